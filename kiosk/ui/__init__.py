"""The Qt layer: windows and the worker threads that keep TensorFlow off the GUI thread.

Nothing here knows how recognition works; it shows what the analysis callable returns.
"""
