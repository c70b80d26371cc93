"""Smoke test of the benchmark runner: ``benchmarks/run.py --quick`` runs and writes its four tables.

The quick run uses generated clips only, so it does not need ../shared/videos.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUNNER = REPO / "benchmarks" / "run.py"
HEADINGS = ("## 1. Budget use", "## 2. Fidelity", "## 3. Speed", "## 4. Planning cost")


def test_quick_benchmark_runs(tmp_path: Path) -> None:
    pytest.importorskip("cv2", reason="the benchmarks need opencv-python-headless (pip install -e .[bench])")
    out = tmp_path / "RESULTS.md"
    proc = subprocess.run(
        [sys.executable, str(RUNNER), "--quick", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    text = out.read_text(encoding="utf-8")
    for heading in HEADINGS:
        assert heading in text, f"{heading!r} missing from the report"
        assert heading in proc.stdout, f"{heading!r} missing from the printed tables"
    assert "## Goals" in text
    assert "| PASS |" in text or "| FAIL |" in text
