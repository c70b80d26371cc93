"""The machine, library versions and package revision a report was made on."""
from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import av
import cv2
import mistral_common
import numpy as np
import PIL

from .clips import REPO


def package_revision() -> str:
    """The repository's commit and whether the package's files differ from it."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "cosmos_upsample_fix"], cwd=REPO,
                               capture_output=True, text=True, timeout=10).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return "unknown (git not available)"
    changed = [line[3:] for line in dirty if line.strip()]
    return f"commit {rev or 'unknown'}" + (f", with uncommitted changes to {', '.join(changed)}" if changed else "")


def describe(revision: str) -> list[str]:
    """Markdown bullet lines: package, CPU, OS, versions, thread settings."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = {k: v for k, v in os.environ.items()
               if k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OPENCV_FOR_THREADS_NUM")}
    avcodec = ".".join(map(str, av.library_versions.get("libavcodec", ())))
    return [
        f"- Package: cosmos_upsample_fix at {revision} (as imported at the start of the run)",
        f"- CPU: {cpu}, {os.cpu_count()} logical cores ({usable} usable by this process)",
        f"- OS: {platform.platform()}",
        f"- Python {platform.python_version()}, PyAV {av.__version__} (FFmpeg libavcodec {avcodec}), numpy "
        f"{np.__version__}, Pillow {PIL.__version__}, OpenCV {cv2.__version__} (cv2 threads "
        f"{cv2.getNumThreads()}), mistral_common {mistral_common.__version__}",
        "- Thread settings in the environment: " + (", ".join(f"{k}={v}" for k, v in sorted(threads.items()))
                                                     or "none"),
    ]
