"""``python -m kiosk``: the command line (see kiosk/cli.py)."""
import sys

from kiosk.cli import main

if __name__ == "__main__":
    sys.exit(main())
