"""The fault suite: odd images, failing cameras, SIGKILL, a full disk, concurrent writers, long runs.

Each module holds one fault loop as a plain function that returns its figures; the tests in
this folder run each loop a few times, ``benchmarks/faults.py`` runs them long and writes
reports/faults.json and reports/faults.md. Everything is real: files, processes, signals,
SQLite, file systems, MTCNN and the shipped model; the kiosk is driven only through its
public API and ``python -m kiosk``.
"""
