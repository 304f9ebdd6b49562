"""Facts about the machine a benchmark ran on: CPU, cores, TensorFlow and its device, commit, date."""
from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def machine_facts() -> dict:
    """CPU model, cores, memory, Python/TensorFlow versions, GPUs, the git commit and the date.

    Importing TensorFlow here is deliberate: a benchmark reports the version that ran.
    """
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    status = _git("status", "--porcelain", "--untracked-files=no")
    gpu_names = [tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name) for gpu in gpus]
    return {
        "cpu_model": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gb": _memory_gb(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "gpus": gpu_names,
        # TensorFlow places every op (MTCNN's and the embedder's) on the first GPU when there is one.
        "tensorflow_device": f"GPU:0 ({gpu_names[0]})" if gpus else "CPU",
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "model": _model(),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),  # tracked files changed since the commit
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _model() -> str:
    """The face model the benchmark's engine loads ($KIOSK_MODEL or the shipped one): its file and digest."""
    from kiosk.modelcard import default_model_path, sha256_of

    path = default_model_path()
    return f"{path.name} (sha256 {sha256_of(path)[:16]})" if path.is_file() else f"{path} (missing)"


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _memory_gb() -> float | None:
    meminfo = Path("/proc/meminfo")
    if not meminfo.exists():
        return None
    for line in meminfo.read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 2**20, 1)
    return None


def _git(*args: str) -> str | None:
    try:
        result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None
