"""Benchmarks: accuracy, the door, speed and faults, run from a checkout (they need LFW or ORL, and
some the training package); a kiosk install carries none of them. `python -m benchmarks.speed`
is the speed suite; the other scripts run as `python benchmarks/NAME.py`."""
