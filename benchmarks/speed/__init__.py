"""The kiosk's speed and memory benchmark: `python -m benchmarks.speed [--quick]`.

Sections (one module each): stages (per-stage latency), endtoend (KioskRunner frames/s and
time to a grant), embedding (crops/s), matching (1k-100k templates), model (size, training
images/s), memory (peak RSS and growth over a long run). Writes reports/bench.json and
reports/bench.md. Frames are built from LFW ($LFW_DIR) and cached in $KIOSK_CACHE_DIR/bench/.
"""
