"""A decoder travels to Dask workers by absolute path *and* content (issue #24, item 3): a worker that
cached an earlier checkpoint under the same path reloads it, and one that sees another file refuses."""

import os
import shutil

import pytest
import torch

import seegaan
from seegaan import demo
from seegaan.decoding import _DECODERS, NullDifferences, worker_decoder


def _retrained(src, dst):
    """A loadable checkpoint with other bytes (as a retraining into the same path would leave)."""
    payload = torch.load(src, map_location="cpu", weights_only=False)
    payload["retrained"] = True
    torch.save(payload, dst)


def test_a_retrained_checkpoint_under_the_same_path_is_reloaded(tmp_path):
    path = tmp_path / "model.pt"
    shutil.copyfile(demo.decoder_path(), path)
    first = seegaan.load_decoder(path)
    a = worker_decoder(str(path), identity=first.identity)
    assert worker_decoder(str(path), identity=first.identity) is a  # cached
    _retrained(demo.decoder_path(), path)
    second = seegaan.load_decoder(path)
    assert second.identity != first.identity
    b = worker_decoder(str(path), identity=second.identity)
    assert b is not a and b.identity == second.identity
    assert sum(k.startswith(f"{path}\0") for k in _DECODERS) == 1  # the stale one is gone
    # a worker that sees another file than the client refuses, in one line
    with pytest.raises(seegaan.SeegaanError, match="is not the client's") as e:
        worker_decoder(str(path), identity=first.identity)
    assert "\n" not in str(e.value)


def test_a_relative_decoder_travels_as_an_absolute_path(tmp_path, monkeypatch):
    shutil.copyfile(demo.decoder_path(), tmp_path / "model.pt")
    monkeypatch.chdir(tmp_path)
    cohort = seegaan.open_cohort(demo.cohort_path())
    interp = seegaan.interpolate(cohort.isel(image=slice(0, 40)), feature="ahf", steps=2)
    dec = seegaan.load_decoder("model.pt")
    null = NullDifferences(interp, dec, "patient-label", (2, 64, 64), spec="model.pt")
    assert null.spec == os.path.join(str(tmp_path), "model.pt") and null.identity == dec.identity
    state = null.__getstate__()
    assert state["spec"] == null.spec and state["identity"] == dec.identity
