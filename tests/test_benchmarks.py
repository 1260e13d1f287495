"""The benchmark scripts still run (their --quick modes) and print what the README quotes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _quick(script: str) -> subprocess.CompletedProcess:
    """Run ``benchmarks/<script> --quick`` on one thread; it must succeed."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--quick"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_bench_main_job_quick_prints_the_decoding_share():
    pytest.importorskip("torch")
    done = _quick("bench_main_job.py")
    share = re.search(r"decoding share\s+([\d.]+)%", done.stdout)
    assert share is not None, done.stdout
    assert 0.0 < float(share.group(1)) <= 100.0
    assert "null trajectories" in done.stdout and "(patient-label)" in done.stdout


def test_bench_scaling_quick_prints_a_row_per_point():
    pytest.importorskip("matplotlib")
    done = _quick("bench_scaling.py")
    rows = re.findall(r"^\s+(n|B)\s+(\d+)\s+\d+\s+\d+\s+(\d+)\s+\d+\s+0\s+([\d.]+)\s", done.stdout, re.M)
    assert [(f, int(n), int(b)) for f, n, b, _ in rows] == [("n", 200, 20), ("n", 400, 20), ("B", 200, 40)], done.stdout
    assert all(float(t) > 0 for *_, t in rows)
