"""The benchmark scripts still run (their --quick modes) and print what the README quotes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_bench_main_job_quick_prints_the_decoding_share():
    pytest.importorskip("torch")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_main_job.py"), "--quick"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    share = re.search(r"decoding share\s+([\d.]+)%", done.stdout)
    assert share is not None, done.stdout
    assert 0.0 < float(share.group(1)) <= 100.0
    assert "null trajectories" in done.stdout and "(patient-label)" in done.stdout
