"""Training on real radiographs, exact resume after SIGKILL, two-process gloo DDP, the CLI commands."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from seegaan.model import small_config  # noqa: E402
from seegaan.model.checkpoint import read_checkpoint  # noqa: E402
from seegaan.model.training import TrainConfig, train  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CXR = Path(os.environ.get("SEEGAAN_CXR_DIR", REPO.parent / "shared" / "data" / "cxr"))
needs_cxr = pytest.mark.skipif(not (CXR / "images").is_dir(), reason=f"no radiographs at {CXR}")


def _quiet(_msg):
    pass


def _cxr(size: int, n_train: int, n_val: int):
    from seegaan.data import load_dataset

    ds = load_dataset(CXR / "images", CXR / "metadata.csv", size=size, view=["PA", "AP"])
    train_set, val_set = ds.subset("train"), ds.subset("val")
    return (train_set.array(range(min(n_train, len(train_set)))), val_set.array(range(min(n_val, len(val_set)))))


TINY = dict(width=8, latent_size=16, mapping_layers=2)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@needs_cxr
@pytest.mark.slow
def test_cpu_training_beats_mean_image(tmp_path):
    data = _cxr(64, 300, 64)
    cfg = small_config(64, width=16, latent_size=64)
    result = train(
        data,
        out_dir=tmp_path,
        model_config=cfg,
        log=_quiet,
        config=TrainConfig(steps=300, batch_size=8, lr=0.004, checkpoint_every=150, val_every=150),
    )
    baseline = result.baseline_l2
    val = [h["val_l2"] for h in result.history]
    assert [h["step"] for h in result.history] == [150, 300]
    assert val[-1] < 0.7 * baseline, (val, baseline)
    assert result.history[-1]["val_psnr"] > 10 * np.log10(4 / baseline)
    last = read_checkpoint(result.last)
    assert last["train"]["step"] == 300
    assert last["train"]["perceptual"] == "none"
    assert last["train"]["best_metric"] == pytest.approx(min(val))
    best = read_checkpoint(result.best)
    assert best["train"]["step"] == 150 + 150 * int(np.argmin(val))


def _state_of(path):
    payload = read_checkpoint(path)
    return payload["state"], payload["train"]


def _assert_same_tree(a, b, *, rtol=0.0, atol=0.0):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _assert_same_tree(a[key], b[key], rtol=rtol, atol=atol)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same_tree(x, y, rtol=rtol, atol=atol)
    elif isinstance(a, torch.Tensor):
        if a.is_floating_point():
            torch.testing.assert_close(a, b, rtol=rtol, atol=atol)
        else:
            assert torch.equal(a, b)
    elif isinstance(a, float):
        assert a == pytest.approx(b, rel=rtol, abs=atol)
    else:
        assert a == b


@needs_cxr
def test_kill_and_resume_continues_exactly(tmp_path):
    data = _cxr(32, 64, 8)
    np.save(tmp_path / "train.npy", data[0])
    np.save(tmp_path / "val.npy", data[1])
    cfg = small_config(32, **TINY)
    common = dict(
        batch_size=4,
        checkpoint_every=3,
        val_every=3,
        augment="ada",
        ada_interval=2,
        ada_kimg=0.05,
        ada_target=-1.0,
        seed=5,
    )
    # reference: 9 uninterrupted steps
    ref = train(data, out_dir=tmp_path / "ref", model_config=cfg, log=_quiet, config=TrainConfig(steps=9, **common))
    # a separate process trains towards many steps and is SIGKILLed after its first checkpoint
    killed = tmp_path / "killed"
    script = textwrap.dedent(f"""
        import numpy as np
        from seegaan.model import small_config
        from seegaan.model.training import TrainConfig, train
        data = (np.load({str(tmp_path / "train.npy")!r}), np.load({str(tmp_path / "val.npy")!r}))
        train(data, out_dir={str(killed)!r}, model_config=small_config(32, **{TINY!r}),
              config=TrainConfig(steps=10_000, **{common!r}), log=lambda m: None)
    """)
    proc = subprocess.Popen(
        [sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    )
    try:
        deadline = time.time() + 120
        while not (killed / "last.pt").exists():
            assert proc.poll() is None, "training process died"
            assert time.time() < deadline, "no checkpoint within 120 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    saved_state, saved_train = _state_of(killed / "last.pt")
    saved_step = saved_train["step"]
    assert saved_step % 3 == 0 and 3 <= saved_step < 9
    result = train(
        data, out_dir=killed, model_config=cfg, log=_quiet, config=TrainConfig(steps=9, **common), stop_after=0
    )
    assert result.step == saved_step  # resumed at the saved step, nothing trained yet
    _, reloaded = _state_of(killed / "last.pt")
    _assert_same_tree(reloaded["optimizer_g"], saved_train["optimizer_g"])
    _assert_same_tree(reloaded["optimizer_d"], saved_train["optimizer_d"])
    assert reloaded["augment"] == saved_train["augment"]
    result = train(data, out_dir=killed, model_config=cfg, log=_quiet, config=TrainConfig(steps=9, **common))
    assert result.step == 9
    resumed_state, resumed_train = _state_of(killed / "last.pt")
    ref_state, ref_train = _state_of(ref.last)
    # another process may round differently in the last bits (CPU kernels depend on memory alignment),
    # so across processes the comparison allows float32 round-off; in one process it is bitwise (below)
    _assert_same_tree(resumed_state, ref_state, rtol=1e-4, atol=1e-6)
    _assert_same_tree(resumed_train["optimizer_g"], ref_train["optimizer_g"], rtol=1e-4, atol=1e-7)
    assert resumed_train["augment"] == ref_train["augment"]
    assert resumed_train["augment"]["p"] > 0  # ADA moved p (so p really was carried over)
    assert [h["step"] for h in resumed_train["history"]] == [3, 6, 9]


def _random_data(n_train=64, n_val=8, size=32):
    rng = np.random.default_rng(0)
    return (
        rng.uniform(-1, 1, (n_train, 1, size, size)).astype(np.float32),
        rng.uniform(-1, 1, (n_val, 1, size, size)).astype(np.float32),
    )


def test_resume_in_process_is_bit_identical(tmp_path):
    data = _random_data()
    cfg = small_config(32, **TINY)
    common = dict(
        batch_size=4,
        checkpoint_every=3,
        val_every=3,
        augment="ada",
        ada_interval=2,
        ada_kimg=0.05,
        ada_target=-1.0,
        seed=5,
    )
    ref = train(data, out_dir=tmp_path / "ref", model_config=cfg, log=_quiet, config=TrainConfig(steps=6, **common))
    part = train(
        data,
        out_dir=tmp_path / "run",
        model_config=cfg,
        log=_quiet,
        config=TrainConfig(steps=6, **common),
        stop_after=3,
    )
    assert part.step == 3
    done = train(data, out_dir=tmp_path / "run", model_config=cfg, log=_quiet, config=TrainConfig(steps=6, **common))
    assert done.step == 6
    _assert_same_tree(done.networks.state_dict(), ref.networks.state_dict())
    _assert_same_tree(done.ema.state_dict(), ref.ema.state_dict())
    assert done.augment_p == ref.augment_p
    _assert_same_tree(_state_of(done.last)[1]["optimizer_d"], _state_of(ref.last)[1]["optimizer_d"])


def test_resume_refuses_other_architecture(tmp_path):
    data = _random_data(8, 4)
    train(
        data,
        out_dir=tmp_path,
        model_config=small_config(32, **TINY),
        log=_quiet,
        config=TrainConfig(steps=1, batch_size=2),
    )
    from seegaan._internal.errors import SeegaanError

    with pytest.raises(SeegaanError, match="different architecture"):
        train(
            data,
            out_dir=tmp_path,
            model_config=small_config(32, width=16, latent_size=16, mapping_layers=2),
            log=_quiet,
            config=TrainConfig(steps=2, batch_size=2),
        )


@pytest.mark.slow
def _free_port() -> int:
    """A TCP port nobody listens on now (a fixed one clashed with another test run on the same machine)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_gloo_ddp_keeps_ranks_identical(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "train.npy", rng.uniform(-1, 1, (16, 1, 32, 32)).astype(np.float32))
    np.save(tmp_path / "val.npy", rng.uniform(-1, 1, (4, 1, 32, 32)).astype(np.float32))
    script = tmp_path / "ddp.py"
    script.write_text(
        textwrap.dedent(f"""
        import os, numpy as np, torch
        torch.set_num_threads(1)
        from seegaan.model import small_config
        from seegaan.model.training import TrainConfig, train
        data = (np.load({str(tmp_path / "train.npy")!r}), np.load({str(tmp_path / "val.npy")!r}))
        result = train(data, out_dir={str(tmp_path / "out")!r}, model_config=small_config(32, **{TINY!r}),
                       config=TrainConfig(steps=3, batch_size=2, checkpoint_every=3, val_every=3,
                                          augment="ada", ada_interval=1, ada_kimg=0.01, ada_target=-1.0),
                       log=lambda m: None)
        rank = int(os.environ["RANK"])
        torch.save({{"nets": result.networks.state_dict(), "ema": result.ema.state_dict(),
                    "p": result.augment_p, "step": result.step, "loss_d": result.last_logs["loss_d"]}},
                   {str(tmp_path)!r} + f"/rank{{rank}}.pt")
    """)
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            "2",
            "--master-port",
            str(_free_port()),
            str(script),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    _assert_same_tree(r0["nets"], r1["nets"])
    _assert_same_tree(r0["ema"], r1["ema"])
    assert r0["p"] == r1["p"] > 0
    assert r0["step"] == r1["step"] == 3
    # the ranks saw different batches: their last local discriminator losses differ
    assert r0["loss_d"] != r1["loss_d"]
    payload = read_checkpoint(tmp_path / "out" / "last.pt")
    assert payload["train"]["world_size"] == 2 and len(payload["train"]["rng"]) == 2


def test_run_already_past_its_steps_trains_no_further(tmp_path):
    data = _random_data(8, 2)
    cfg = small_config(32, **TINY)
    train(data, out_dir=tmp_path, model_config=cfg, log=_quiet, config=TrainConfig(steps=3, batch_size=2))
    before = (tmp_path / "last.pt").read_bytes()
    again = train(data, out_dir=tmp_path, model_config=cfg, log=_quiet, config=TrainConfig(steps=1, batch_size=2))
    assert again.step == 3 and again.best is not None
    assert (tmp_path / "last.pt").read_bytes() == before  # nothing trained, nothing rewritten


def test_time_limit_stops_cleanly_and_resumes(tmp_path):
    from seegaan._internal.errors import SeegaanError

    data = _random_data(8, 2)
    cfg = small_config(32, **TINY)
    messages = []
    common = dict(steps=40, batch_size=2, checkpoint_every=100, val_every=100)
    # a limit that has passed by the first check: the run stops at step 10 (the limit is checked every
    # 10 steps), validated and checkpointed, and says why
    result = train(
        data, out_dir=tmp_path, model_config=cfg, log=messages.append, config=TrainConfig(max_minutes=1e-9, **common)
    )
    assert result.step == 10
    assert any("time limit of 1e-09 minutes reached at step 10" in m for m in messages)
    payload = read_checkpoint(tmp_path / "last.pt")
    assert payload["train"]["step"] == 10 and payload["train"]["history"][-1]["step"] == 10
    assert isinstance(result.last_logs["loss_d"], float)
    done = train(data, out_dir=tmp_path, model_config=cfg, log=_quiet, config=TrainConfig(**common))
    assert done.step == 40
    with pytest.raises(SeegaanError, match="max_minutes must be > 0"):
        TrainConfig(max_minutes=0)


def test_train_step_without_sync_returns_the_same_losses_as_tensors():
    from seegaan.model.training import Trainer, _Dist

    cfg = small_config(32, **TINY)
    x = torch.from_numpy(_random_data(4, 1)[0])
    losses = []
    for sync in (True, False):
        torch.manual_seed(0)
        trainer = Trainer(cfg, TrainConfig(batch_size=4, seed=1), device=torch.device("cpu"), dist=_Dist())
        losses.append(trainer.train_step(x, sync=sync))
    floats, tensors = losses
    assert set(floats) == set(tensors)
    assert all(isinstance(v, float) for v in floats.values())
    assert isinstance(tensors["loss_d"], torch.Tensor)
    assert {k: float(v) for k, v in tensors.items()} == floats


def test_resume_uses_this_runs_learning_rate(tmp_path):
    data = _random_data(8, 2)
    cfg = small_config(32, **TINY)
    common = dict(batch_size=2, checkpoint_every=100, val_every=100)
    train(data, out_dir=tmp_path, model_config=cfg, log=_quiet, config=TrainConfig(steps=2, **common))
    assert read_checkpoint(tmp_path / "last.pt")["train"]["optimizer_g"]["param_groups"][0]["lr"] == 1e-3
    messages = []
    train(
        data, out_dir=tmp_path, model_config=cfg, log=messages.append, config=TrainConfig(steps=4, lr=2.5e-4, **common)
    )
    assert any("Adam lr 0.001 in the checkpoint, 0.00025 from this run's settings" in m for m in messages)
    saved = read_checkpoint(tmp_path / "last.pt")["train"]
    assert {g["lr"] for key in ("optimizer_g", "optimizer_d") for g in saved[key]["param_groups"]} == {2.5e-4}
    # the same settings again: nothing to say
    messages.clear()
    train(
        data, out_dir=tmp_path, model_config=cfg, log=messages.append, config=TrainConfig(steps=5, lr=2.5e-4, **common)
    )
    assert not any(m.startswith("Adam ") for m in messages)


def test_build_networks_and_train_leave_the_global_rng_as_it_was(tmp_path):
    from seegaan.model import build_networks

    torch.manual_seed(1234)
    before = torch.random.get_rng_state()
    build_networks(small_config(32, **TINY), seed=7)
    assert torch.equal(torch.random.get_rng_state(), before)
    flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    train(
        _random_data(8, 2),
        out_dir=tmp_path,
        model_config=small_config(32, **TINY),
        log=_quiet,
        config=TrainConfig(steps=2, batch_size=2),
    )
    assert torch.equal(torch.random.get_rng_state(), before)
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == flags


def test_same_seed_same_bits_whatever_the_callers_rng(tmp_path):
    """A run draws from its own streams: the caller's global RNG state does not change its weights."""
    data, cfg = _random_data(8, 2), small_config(32, **TINY)
    results = []
    for caller_seed in (0, 99):
        torch.manual_seed(caller_seed)
        results.append(
            train(
                data,
                out_dir=tmp_path / str(caller_seed),
                model_config=cfg,
                log=_quiet,
                config=TrainConfig(steps=3, batch_size=2, seed=4),
            )
        )
    _assert_same_tree(results[0].networks.state_dict(), results[1].networks.state_dict())
    assert results[0].last_logs == results[1].last_logs


def test_trainer_steps_leave_the_global_rng_and_continue_their_own_stream():
    from seegaan.model.training import Trainer, _Dist

    cfg, x = small_config(32, **TINY), torch.from_numpy(_random_data(4, 1)[0])
    ref = Trainer(cfg, TrainConfig(batch_size=4, seed=1), device=torch.device("cpu"), dist=_Dist())
    expected = [ref.train_step(x) for _ in range(2)]
    trainer = Trainer(cfg, TrainConfig(batch_size=4, seed=1), device=torch.device("cpu"), dist=_Dist())
    got = []
    for _ in range(2):
        before = torch.random.get_rng_state()
        got.append(trainer.train_step(x))
        assert torch.equal(torch.random.get_rng_state(), before)
        torch.rand(5)  # the caller draws in between: the trainer's stream is not disturbed
    assert got == expected


def test_trainer_stream_is_what_manual_seed_gives():
    """The stream a Trainer draws from is torch.manual_seed(seed * 1000 + rank)'s (checkpoints and
    results of earlier versions stay reproducible)."""
    from seegaan.model._runtime import TorchStream

    stream = TorchStream(5 * 1000, torch.device("cpu"))
    with stream.active():
        ours = torch.randn(6), torch.rand(3)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5 * 1000)
        reference = torch.randn(6), torch.rand(3)
    assert all(torch.equal(a, b) for a, b in zip(ours, reference))
    with stream.active():  # it continues where it stopped
        more = torch.randn(4)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5 * 1000)
        torch.randn(6), torch.rand(3)
        assert torch.equal(more, torch.randn(4))


def test_train_reports_progress_to_the_callable(tmp_path):
    calls = []

    def progress(n=1, total=None):
        calls.append((n, total))

    train(
        _random_data(8, 2),
        out_dir=tmp_path,
        model_config=small_config(32, **TINY),
        log=_quiet,
        config=TrainConfig(steps=3, batch_size=2),
        progress=progress,
    )
    assert calls[0] == (0, 3) and calls[1:] == [(1, None)] * 3


def test_resolve_device():
    from seegaan._internal.errors import SeegaanError
    from seegaan.model._runtime import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None).type == resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(SeegaanError, match="no CUDA GPU"):
            resolve_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_settings_are_restored():
    from seegaan.model._runtime import cuda_settings

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    current = torch.cuda.current_device()
    with pytest.raises(RuntimeError, match="inside"):
        with cuda_settings(torch.device("cuda", 0)):
            assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
            raise RuntimeError("inside")
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    assert torch.cuda.current_device() == current


# ---- issue #12: a run that can be killed ---------------------------------------------------------
def _wait_for(path: Path, proc, seconds: float = 60) -> None:
    deadline = time.time() + seconds
    while not path.exists():
        assert proc.poll() is None, f"training process ended early: {proc.communicate()[1][-2000:]}"
        assert time.time() < deadline, f"no {path.name} within {seconds} s"
        time.sleep(0.05)


def test_sigkill_after_a_wall_time_checkpoint_leaves_a_resumable_last_pt(tmp_path):
    """Step and validation intervals far away: only the wall-time checkpoint (every 0.1 s) writes."""
    out = tmp_path / "run"
    script = textwrap.dedent(f"""
        import numpy as np
        from seegaan.model import small_config
        from seegaan.model.training import TrainConfig, train
        rng = np.random.default_rng(0)
        data = (rng.uniform(-1, 1, (8, 1, 32, 32)).astype(np.float32),
                rng.uniform(-1, 1, (2, 1, 32, 32)).astype(np.float32))
        train(data, out_dir={str(out)!r}, model_config=small_config(32, **{TINY!r}), log=lambda m: None,
              config=TrainConfig(steps=100_000, batch_size=2, checkpoint_every=100_000, val_every=100_000,
                                 checkpoint_minutes=0.1 / 60))
    """)
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
    )
    try:
        _wait_for(out / "last.pt", proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    step = read_checkpoint(out / "last.pt")["train"]["step"]
    assert 1 <= step < 100_000
    result = train(
        _random_data(8, 2),
        out_dir=out,
        model_config=small_config(32, **TINY),
        log=_quiet,
        config=TrainConfig(steps=100_000, batch_size=2, checkpoint_every=100_000, val_every=100_000),
        stop_after=1,
    )
    assert result.step == step + 1


def test_sigterm_saves_last_pt_between_steps_and_leaves_no_part_file(tmp_path):
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for k in range(6):
        Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(images / f"i{k}.png")
    out = tmp_path / "run"
    args = [
        "train",
        "--images",
        str(images),
        "--out-dir",
        str(out),
        "--image-size",
        "32",
        "--width",
        "8",
        "--latent-size",
        "16",
        "--mapping-layers",
        "2",
        "--steps",
        "100000",
        "--batch-size",
        "2",
        "--checkpoint-minutes",
        str(0.1 / 60),
        "--device",
        "cpu",
        "--threads",
        "1",
    ]
    code = "import sys; from seegaan.cli.app import main; sys.argv = ['seegaan'] + sys.argv[1:]; main()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
    )
    try:
        _wait_for(out / "last.pt", proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err[-2000:]
    assert "step 1/100000" in err  # a line after the first step, though stderr is not a terminal
    assert "checkpoint (last.pt) every 10000 steps or 0.00166667 minutes" in err
    line = [x for x in err.splitlines() if "interrupted (SIGTERM) at step" in x]
    assert line and "rerun the same command to resume" in line[0], err[-2000:]
    step = int(line[0].split("at step ")[1].split(";")[0])
    assert read_checkpoint(out / "last.pt")["train"]["step"] == step
    assert not [p for p in out.iterdir() if p.name.endswith(".part")]
    assert not (out / ".seegaan.lock").exists()


def _train_on_locked_folder(folder: Path):
    """For tests/test_bad_input.py: a second training on a folder another run holds."""
    from seegaan._internal.io import folder_lock

    with folder_lock(folder):
        train(
            _random_data(4, 1),
            out_dir=folder,
            model_config=small_config(32, **TINY),
            log=_quiet,
            config=TrainConfig(steps=1, batch_size=2),
        )


def _train_without_resume_onto_a_run(folder: Path):
    """For tests/test_bad_input.py: --no-resume would replace an earlier run's last.pt."""
    (folder / "last.pt").write_bytes(b"an earlier run")
    train(
        _random_data(4, 1),
        out_dir=folder,
        model_config=small_config(32, **TINY),
        log=_quiet,
        config=TrainConfig(steps=1, batch_size=2),
        resume=False,
    )


def test_default_validation_interval_gives_about_ten_validations():
    assert TrainConfig(steps=4000).validation_interval == 400
    assert TrainConfig(steps=5).validation_interval == 1
    assert TrainConfig().validation_interval == 10_000
    assert TrainConfig(steps=4000, val_every=7).validation_interval == 7


@needs_cxr
def test_checkpoint_records_its_training_images(tmp_path):
    import pandas as pd

    from seegaan.data import load_dataset
    from seegaan.model.training import ids_sha256

    table = pd.read_csv(CXR / "metadata.csv").head(30)
    data = load_dataset(CXR / "images", table, size=32)
    train(
        data,
        out_dir=tmp_path,
        model_config=small_config(32, **TINY),
        log=_quiet,
        config=TrainConfig(steps=1, batch_size=2, val_images=2),
    )
    record = read_checkpoint(tmp_path / "last.pt")["train"]["data"]
    assert record["image_ids_sha256"] == ids_sha256(data.image_ids)
    assert record["train_ids_sha256"] == ids_sha256(data.subset("train").image_ids)
    assert record["split_seed"] == 0
