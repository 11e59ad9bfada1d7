"""The machine this process runs on, as recorded beside results: CPU model and features, cores, GPUs.

Trained weights and timings depend on it (another CPU's vector units round in another order, and
TensorFlow picks its kernels by the instructions it finds), so training records and the study's
run log keep it.

>>> info = machine_info()
>>> sorted(info)
['cores', 'cpu', 'cpu_features', 'gpu']
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

#: CPU features that change which kernels TensorFlow and TFLite use (and so their last bits).
CPU_FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16")


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; the platform's name elsewhere)."""
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """Every flag ``/proc/cpuinfo`` lists for the CPU (``flags``, or ``Features`` on Arm); empty
    where it is not readable."""
    for line in _cpuinfo().splitlines():
        if line.startswith(("flags", "Features")):
            return line.split(":", 1)[1].split()
    return []


def cpu_features() -> list[str]:
    """Which of :data:`CPU_FEATURES` the CPU has (empty where ``/proc/cpuinfo`` is not readable)."""
    flags = cpu_flags()
    return [feature for feature in CPU_FEATURES if feature in flags]


def gpu_names() -> str:
    """The names of the NVIDIA GPUs ``nvidia-smi`` lists, comma-separated ("" without any)."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return ", ".join(line.strip() for line in out.stdout.splitlines() if line.strip())


def machine_info() -> dict[str, Any]:
    """CPU model, its :func:`cpu_features`, logical cores and GPU(s) (``"none"``)."""
    return {"cpu": cpu_model(), "cpu_features": cpu_features(), "cores": os.cpu_count(), "gpu": gpu_names() or "none"}
