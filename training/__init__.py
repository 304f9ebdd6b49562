"""Builds the kiosk's recognition model from LFW: prepare, train, evaluate, compare, export."""
