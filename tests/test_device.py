"""``device=`` / ``--device``: where a checkpoint decoder decodes (sequence, local, explain, predict, CLI).

CPU-only: the default ("cpu") gives the same bits as before the option existed; CUDA on a machine without a
GPU, an unknown device and a device other than cpu for a Python decoder are one-line errors before any
decoding; the device reaches the Dask workers' decoder cache (:func:`seegaan.decoding.worker_decoder`).
"""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

import seegaan
from seegaan._internal.errors import SeegaanError
from seegaan.stats import SeegaanWarning
from seegaan.testing import cnns as _cnns
from seegaan.testing.cohorts import make_cohort
from seegaan.testing.decoders import linear8

torch = pytest.importorskip("torch")
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
SPEC = "seegaan.testing.decoders:linear8"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny seegaan checkpoint: 8 latents -> 32x32 images."""
    from seegaan.model import build_networks, small_config
    from seegaan.model.checkpoint import networks_state, save_checkpoint

    cfg = small_config(32, width=8, latent_size=8)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    return str(save_checkpoint(path, cfg, networks_state(build_networks(cfg, seed=0), None)))


@pytest.fixture(scope="module")
def interp():
    return seegaan.interpolate(make_cohort(n=24, seed=4), feature="sex", steps=3)


def _one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert msg and "\n" not in msg
    return msg


@pytest.fixture
def no_checkpoint_loading(monkeypatch):
    """Fail the test if a checkpoint is loaded (the device must be refused before any decoding)."""
    import seegaan.model

    def refuse(*args, **kwargs):
        raise AssertionError("a checkpoint was loaded before the device was checked")

    monkeypatch.setattr(seegaan.model, "load_checkpoint_decoder", refuse)


# ---------------------------------------------------------------------------------------------
# the API
# ---------------------------------------------------------------------------------------------
def test_device_cpu_gives_the_default_bits_and_records_the_device(checkpoint, interp):
    runs = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SeegaanWarning)
        runs["default"] = seegaan.sequence(interp, checkpoint, n_perm=9, seed=2)
        runs["cpu"] = seegaan.sequence(interp, checkpoint, n_perm=9, seed=2, device="cpu")
        runs["torch.device"] = seegaan.sequence(interp, checkpoint, n_perm=9, seed=2, device=torch.device("cpu"))
        if not torch.cuda.is_available():
            runs["auto"] = seegaan.sequence(interp, checkpoint, n_perm=9, seed=2, device="auto")
    for name, run in runs.items():
        for field in ("images", "p_value", "p_adjusted", "null_max"):
            np.testing.assert_array_equal(getattr(run, field), getattr(runs["default"], field), err_msg=name)
        assert run.attrs["precision"] == "fp32 (TF32 off) on cpu", name
    # the same precision record for a callable decoder, which says so
    assert seegaan.sequence(interp, linear8, n_perm=0).attrs["precision"].endswith("on cpu (callable decoder)")


def test_the_checkpoint_is_loaded_on_the_device(checkpoint):
    from seegaan.decoder import load_decoder_on

    dec = load_decoder_on(checkpoint, "cpu")
    assert dec.fn.device == torch.device("cpu")


def _decoding_calls(interp, decoder, device) -> list:
    """The four functions that decode, each as a call with ``decoder`` on ``device``."""
    from seegaan.explain.counterfactual import explain
    from seegaan.explain.local import local_sequence
    from seegaan.explain.predictions import predict

    cohort = make_cohort(n=24, seed=4)
    return [
        lambda: seegaan.sequence(interp, decoder, n_perm=9, device=device),
        lambda: local_sequence(cohort, decoder, image_id="img0001", feature="sex", n_perm=9, device=device),
        lambda: explain(
            cohort, decoder, _cnns.region_mean, image_id="img0001", target=1.0, feature="sex", device=device
        ),
        lambda: predict(cohort, _cnns.region_mean, name="cnn", decoder=decoder, device=device),
    ]


@no_cuda
@pytest.mark.parametrize("device", ["cuda", "cuda:0", torch.device("cuda")])
def test_cuda_without_a_gpu_is_one_line_before_any_decoding(checkpoint, interp, device, no_checkpoint_loading):
    for call in _decoding_calls(interp, checkpoint, device):
        with pytest.raises(SeegaanError, match="no CUDA GPU is available") as err:
            call()
        _one_line(err)


@pytest.mark.parametrize("device", ["gpu", "cuda:x", 3, None])
def test_an_unknown_device_is_one_line(checkpoint, interp, device, no_checkpoint_loading):
    with pytest.raises(SeegaanError, match="device") as err:
        seegaan.sequence(interp, checkpoint, n_perm=9, device=device)
    _one_line(err)


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "auto"])
def test_a_python_decoder_refuses_any_device_but_cpu(interp, device):
    from seegaan.decoder import load_decoder
    from seegaan.explain.predictions import predict
    from seegaan.pixeltest import pixel_test

    cohort = make_cohort(n=24, seed=4)
    for decoder in (linear8, SPEC, load_decoder(SPEC)):
        for call in _decoding_calls(interp, decoder, device):
            with pytest.raises(SeegaanError, match="applies to a decoder given as a checkpoint path") as err:
                call()
            _one_line(err)
    with pytest.raises(SeegaanError, match="decode nothing") as err:
        predict(cohort, _cnns.region_mean, name="cnn", images="/nonexistent", device=device)
    _one_line(err)
    with pytest.raises(SeegaanError, match="takes no device") as err:
        pixel_test("/nonexistent", feature="sex", device=device)
    _one_line(err)
    # cpu (the default) is accepted for them, as before
    assert seegaan.sequence(interp, SPEC, n_perm=0, device="cpu").images.shape == (3, 8, 8)


def test_a_missing_decoder_file_is_not_called_python_code(interp):
    with pytest.raises(SeegaanError, match="does not exist") as err:
        seegaan.sequence(interp, "missing.pt", n_perm=9, device="cuda")
    _one_line(err)


def test_explain_and_predict_record_the_precision_and_device():
    from seegaan.explain.counterfactual import explain
    from seegaan.explain.predictions import predict

    cohort = make_cohort(n=24, seed=4)
    r = explain(
        cohort,
        SPEC,
        _cnns.region_mean,
        image_id="img0001",
        target=0.1,
        feature="sex",
        lambda_range=(-40, 40),
        device="cpu",
    )
    assert r.attrs["precision"] == "fp32 (TF32 off) on cpu (callable decoder)"
    pred = predict(cohort, _cnns.region_mean, name="cnn", decoder=SPEC, device="cpu")
    assert pred["cnn"].attrs["precision"] == "fp32 (TF32 off) on cpu (callable decoder)"


# ---------------------------------------------------------------------------------------------
# Dask: the device travels with the null producer and keys the workers' decoder cache
# ---------------------------------------------------------------------------------------------
def test_worker_decoder_loads_on_the_device_and_caches_per_device(checkpoint, monkeypatch):
    from seegaan import decoding as distributed

    monkeypatch.setattr(distributed, "_DECODERS", {})
    dec = distributed.worker_decoder(checkpoint, "cpu")
    assert dec.fn.device == torch.device("cpu")
    assert list(distributed._DECODERS) == [f"{checkpoint}\0cpu\0"]  # path, device, content (none given)
    assert distributed.worker_decoder(checkpoint, "cpu") is dec  # loaded once per process
    assert distributed.worker_decoder(checkpoint) is dec  # cpu is the default
    # another device is another entry, loaded with that device (recorded: there is no GPU here)
    seen = []
    monkeypatch.setattr(distributed, "load_decoder", lambda spec, **kw: seen.append((spec, kw)) or "loaded")
    assert distributed.worker_decoder(checkpoint, "cuda") == "loaded"
    assert seen == [(checkpoint, {"device": "cuda"})]
    assert set(distributed._DECODERS) == {f"{checkpoint}\0cpu\0", f"{checkpoint}\0cuda\0"}


def test_the_null_producer_sends_its_device_to_the_worker(checkpoint, interp, monkeypatch):
    from seegaan import decoding as distributed
    from seegaan.decoding import NullDifferences

    asked = []
    monkeypatch.setattr(
        distributed, "worker_decoder", lambda spec, device="cpu", identity="": asked.append((spec, device))
    )
    producer = NullDifferences(interp, None, "image", (3, 32, 32), spec=checkpoint, device="cuda")
    remote = pickle.loads(pickle.dumps(producer))  # what a Dask worker receives
    assert remote.device == "cuda" and remote._dec is None
    remote.dec
    assert asked == [(checkpoint, "cuda")]


def test_sequence_gives_the_null_producer_the_resolved_device(checkpoint, interp, monkeypatch):
    import seegaan.sequences as sequences

    made = []
    real = sequences.NullDifferences

    def recording(*args, **kwargs):
        made.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(sequences, "NullDifferences", recording)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SeegaanWarning)
        seegaan.sequence(interp, checkpoint, n_perm=5, device="cpu" if torch.cuda.is_available() else "auto")
    assert made and all(kw["device"] == "cpu" for kw in made)


# ---------------------------------------------------------------------------------------------
# the CLI
# ---------------------------------------------------------------------------------------------
def _cli(*args):
    from seegaan.cli.stats import app

    return CliRunner().invoke(app, [str(a) for a in args])


def _error_line(result) -> str:
    assert result.exit_code != 0, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip() and not ln.startswith("note: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("command", ["interpolate", "local", "explain", "predict"])
def test_the_decoding_commands_have_a_device_option(command):
    text = " ".join(_cli(command, "--help").output.replace("│", " ").split())
    assert "--device" in text and "cpu, cuda or auto" in text and "[default: cpu]" in text


def test_pixel_test_has_no_device_option():
    assert "--device" not in _cli("pixel-test", "--help").output


@no_cuda
def test_cli_refuses_cuda_without_a_gpu_before_any_work(tmp_path, monkeypatch, no_checkpoint_loading):
    import seegaan.data.cohort
    import seegaan.interpolation

    def no_work(*args, **kwargs):
        raise AssertionError("work started before --device was checked")

    monkeypatch.setattr(seegaan.interpolation, "interpolate", no_work)
    monkeypatch.setattr(seegaan.data.cohort, "open_cohort", no_work)
    out = tmp_path / "o.nc"
    for args in (
        ["interpolate", "--feature", "sex", "--perm", 5],  # the bundled demo: a checkpoint
        ["local", "--image", "ph00000_0", "--feature", "sex", "--perm", 5],
        ["explain", "--image", "ph00000_0", "--model", "seegaan.testing.cnns:region_mean", "--target", 1],
        ["predict", "--model", "seegaan.testing.cnns:region_mean", "--name", "cnn"],
    ):
        line = _error_line(_cli(*args, "--device", "cuda", "--out", out))
        assert line.startswith("error: ") and "no CUDA GPU is available" in line, (args, line)
        assert not out.exists()


def test_cli_refuses_a_device_for_a_python_decoder_and_an_unknown_device(tmp_path):
    from seegaan import demo

    out = tmp_path / "o.nc"
    line = _error_line(
        _cli(
            "interpolate",
            "--feature",
            "sex",
            "--cohort",
            demo.cohort_path(),
            "--decoder",
            SPEC,
            "--device",
            "cuda",
            "--out",
            out,
        )
    )
    assert "applies to a decoder given as a checkpoint path" in line
    line = _error_line(_cli("interpolate", "--feature", "sex", "--device", "gpu", "--out", out))
    assert "unknown device 'gpu'" in line
    line = _error_line(
        _cli(
            "predict",
            "--model",
            "seegaan.testing.cnns:region_mean",
            "--name",
            "cnn",
            "--images",
            tmp_path,
            "--device",
            "cuda",
            "--out",
            out,
        )
    )
    assert "decode nothing" in line
    assert not out.exists()


def test_the_model_commands_refuse_an_unknown_device_in_one_line(tmp_path):
    """``seegaan sample/reconstruct/encode --device``: the same one-line refusals as the decoding commands
    (torch.device('gpu') itself raises a RuntimeError with torch's own multi-part message)."""
    from seegaan import demo
    from seegaan.cli.app import app

    out = tmp_path / "grid.png"
    for device, message in (("gpu", "unknown device 'gpu'"), ("cuda:7", "cuda:7")):
        if device.startswith("cuda"):
            pytest.importorskip("torch")
            import torch

            if torch.cuda.device_count() > 7:
                continue
        result = CliRunner().invoke(
            app, ["sample", "--checkpoint", str(demo.decoder_path()), "--out", str(out), "--device", device]
        )
        line = _error_line(result)
        assert line.startswith("error: ") and message in line, line
        assert not out.exists()
