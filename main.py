#!/usr/bin/env python3
"""Start the face-recognition access kiosk; ``python main.py --help`` lists the options."""
import sys

from kiosk.app import main

if __name__ == "__main__":
    sys.exit(main())
