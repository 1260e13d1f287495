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
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_bench_main_job_quick_prints_the_decoding_share():
    pytest.importorskip("torch")
    done = _quick("bench_main_job.py")
    share = re.search(r"decoding share\s+([\d.]+)%", done.stdout)
    assert share is not None, done.stdout
    assert 0.0 < float(share.group(1)) <= 100.0
    assert "null trajectories" in done.stdout and "(sign-flip)" in done.stdout


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
    rows = re.findall(
        r"^\s+(demo|demo-dask)\s+2000\s+64\s+3\s+20\s+64\s+(\d)\s+([\d.]+)\s.*?(?:([\d.]+)%)?$", done.stdout, re.M
    )
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
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py"), "--dry", "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
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
    user = seq["user_path"]  # sequence(interp, "model.pt", device=...): the users' spelling
    assert user["precision"].startswith("fp32 (TF32 off) on cpu") and user["max_abs_diff_vs_cpu"] == 0.0
    assert user["max_abs_difference"] > 0 and "cuda:0" in user["absent_gpu_error"]
    assert res["compile"]["status"].startswith(("killed", "finished"))
    assert "strict_fp32_batch4" in res["summary"] and "sequence" in res["summary"]
    assert "of a 55 s budget" in done.stdout


def test_bench_gam_quick_prints_both_paths_with_a_speedup_and_the_same_fitted_values():
    """README: seegaan against pyGAM refits, fixed λ and GCV, "N× faster, same fitted values (max diff 1e-15)"."""
    pytest.importorskip("pygam")
    done = _quick("bench_gam.py")
    rows = re.findall(
        r"^(fixed lambda 0\.6|GCV lambda per dim)\s+([\d.]+)\s+([\d.]+)\s+(\d+)\s+(\d+)x\s+(\S+)$", done.stdout, re.M
    )
    assert [r[0] for r in rows] == ["fixed lambda 0.6", "GCV lambda per dim"], done.stdout
    for _, ours, per_perm, _, speedup, diff in rows:
        assert float(ours) > 0 and float(per_perm) > 0
        assert int(speedup) > 10  # 2,000-15,000x here; refitting pyGAM 64 dims x 101 times is never close
        assert float(diff) < 1e-8  # the same fitted values as pyGAM


def test_bench_kernels_quick_prints_each_kernel_against_the_copy():
    """README: the kernels' bandwidth "= N% of a NumPy copy of the same bytes", Numba and NumPy twins."""
    pytest.importorskip("numba")
    done = _quick("bench_kernels.py")
    assert "4 maps of 3x64x64 float32" in done.stdout and "1 numba threads" in done.stdout, done.stdout
    rows = dict(
        (name, [float(v) for v in vals.split()])
        for name, vals in re.findall(
            r"^(copy \(np\.copyto\)|exceedances numba|exceedances numpy|maxima numba|maxima numpy)\s+((?:[\d.]+\s+){5}[\d.]+)$",  # noqa: E501
            done.stdout,
            re.M,
        )
    )
    assert sorted(rows) == sorted(
        ["copy (np.copyto)", "exceedances numba", "exceedances numpy", "maxima numba", "maxima numpy"]
    ), done.stdout
    assert rows["copy (np.copyto)"][4:] == [1.0, 1.0]
    assert all(r[2] > 0 and r[4] > 0 for r in rows.values())  # GB/s and fraction of the copy's
    assert re.search(
        r"first call in a fresh process: [\d.]+ s with the on-disk cache, [\d.]+ s compiling", done.stdout
    ), done.stdout
    assert "wrote" not in done.stdout  # --quick writes no JSON


def test_bench_model_quick_prints_decode_rates_against_the_conv_limit_and_the_bf16_difference():
    """README: paper generator fp32 / bf16 images/s as % of the reference conv, bf16 speed-up and max pixel
    difference; small model decoding and one-thread training images/s. A 64x64 paper config keeps it short."""
    pytest.importorskip("torch")
    import json

    done = _quick("bench_model.py", "--image-size", "64")
    res = json.loads(done.stdout)
    assert res["threads"] == 1 and res["conv_gflops_fp32"] > 0 and res["conv_gflops_bf16"] > 0
    for name in ("paper64", "small64"):
        for prec in ("fp32", "bf16", "fp32_nchw"):
            assert res[f"decode_{name}_{prec}_images_per_s"] > 0
            assert 0 < res[f"decode_{name}_{prec}_fraction_of_conv_limit"] < 10
        assert 0 < res[f"decode_{name}_bf16_max_abs_diff"] < 0.2  # bf16 rounds, but decodes the same images
    assert res["decode_paper64_gflop_per_image"] == res["paper_generator_gflop_per_image"]
    assert res["train_small64_threads1_images_per_s"] > 0
    assert not any(k.startswith("train_paper") for k in res)  # --quick skips paper-config training


def test_prepare_gpu_data_quick_writes_a_few_resized_radiographs_to_a_temporary_folder():
    """The 8-bit PNGs are seegaan's image reader's pixels (per-image [-1, 1] -> 0..255), with their metadata."""
    import shutil
    import tempfile

    import numpy as np
    import pandas as pd
    from PIL import Image

    from seegaan.data.images import read_image

    data = Path(os.environ.get("SEEGAAN_CXR_DIR", ROOT.parent / "shared" / "data" / "cxr"))
    if not (data / "metadata.csv").exists():
        pytest.skip(f"no radiographs at {data}")
    done = _quick("prepare_gpu_data.py")
    found = re.search(r"^8 images at 32x32 in (.+)$", done.stdout, re.M)
    assert found is not None, done.stdout
    out = Path(found.group(1))
    try:
        assert out != ROOT / ".cxr128" and out.resolve().is_relative_to(Path(tempfile.gettempdir()).resolve())
        table = pd.read_csv(out / "metadata.csv")
        assert len(table) == 8 and set(table["view"]) <= {"PA", "AP"}
        assert sorted(p.stem for p in (out / "images").glob("*.png")) == sorted(table["image_id"])
        for image_id in table["image_id"][:2]:
            png = Image.open(out / "images" / f"{image_id}.png")
            assert png.mode == "L" and png.size == (32, 32)
            ref = np.asarray(read_image(data / "images" / f"{image_id}.png", size=32)).squeeze()
            assert np.abs(np.asarray(png) / 127.5 - 1 - ref).max() <= 0.5 / 127.5 + 1e-6
    finally:
        shutil.rmtree(out, ignore_errors=True)
