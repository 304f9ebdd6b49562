"""``python -m kiosk``: the command line, as the installed ``face-kiosk-admin`` (see kiosk/cli.py)."""
import sys

from kiosk.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m kiosk"))
