"""The benchmark scripts still run (their --quick modes) and print what the README quotes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _quick(script: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``benchmarks/<script> --quick [args]`` on one thread; it must succeed."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--quick", *args], cwd=ROOT,
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


def test_bench_scaling_whole_quick_decodes_with_the_demo_in_one_process_and_on_dask():
    """--whole: the demo generator decodes in one process (a decoding share is printed) and on 2 workers."""
    pytest.importorskip("torch")
    pytest.importorskip("distributed")
    done = _quick("bench_scaling.py", "--whole")
    rows = re.findall(r"^\s+(demo|demo-dask)\s+2000\s+64\s+3\s+20\s+64\s+(\d)\s+([\d.]+)\s.*?(?:([\d.]+)%)?$",
                      done.stdout, re.M)
    assert [(f, int(w)) for f, w, *_ in rows] == [("demo", 0), ("demo-dask", 2)], done.stdout
    assert 0.0 < float(rows[0][3]) <= 100.0 and rows[1][3] == ""
    assert all(float(t) > 0 for _, _, t, _ in rows)


def test_bench_gpu_dry_rehearses_every_part(tmp_path):
    """``bench_gpu.py --dry`` (the GPU call's CPU rehearsal): decode rows against the reference conv in both
    precisions, a timed sequence from a written paper-config checkpoint, the compile subprocess killed at its
    short limit, one JSON."""
    pytest.importorskip("torch")
    out = tmp_path / "bench_gpu.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py"), "--dry", "--json", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    import json

    res = json.loads(out.read_text())
    assert res["dry"] and res["env"]["device"] == "cpu"
    decoded = {(r["precision"], r["variant"]) for r in res["decode"]}
    assert {("strict_fp32", "base"), ("tf32", "base"), ("strict_fp32", "checkpoint_decoder")} <= decoded, decoded
    assert all(r["images_per_s"] > 0 and 0 < r["pct_of_conv"] < 1000 for r in res["decode"])
    assert "fp32 (TF32 off)" in res["conv_reference"]["strict_fp32_precision"]
    seq = res["sequence"]
    assert seq["status"] == "finished", done.stdout[-3000:]
    first = seq["runs"][0]
    assert first["frames_decoded"] == seq["steps"] * (1 + seq["n_perm"])  # observed + one pass (null maps kept)
    assert 0 < first["decoding_share"] <= 1 and first["precision"].startswith("fp32 (TF32 off)")
    assert res["compile"]["status"].startswith(("killed", "finished"))
    assert "strict_fp32_batch4" in res["summary"] and "sequence" in res["summary"]
    assert "of a 55 s budget" in done.stdout
