"""Permutations on Dask workers: the same bits as one process, a lost worker survived, option errors."""

from __future__ import annotations

import os
import signal
import time
import warnings

import numpy as np
import pytest

import seegaan
from seegaan._internal.errors import SeegaanError
from seegaan.stats import SeegaanWarning
from seegaan.testing.cohorts import make_cohort
from seegaan.testing.decoders import linear8

distributed = pytest.importorskip("distributed")
FIELDS = ("p_value", "p_adjusted", "significant", "null_max")
SPEC = "seegaan.testing.decoders:linear8"


def slow_linear8(w):
    """``linear8`` that takes a while, so a worker can be killed while it still has work."""
    time.sleep(0.03)
    return linear8(w)


CALLS = [0]


def counting_linear8(w):
    """``linear8`` that counts its calls in the process that runs it."""
    CALLS[0] += len(w)
    return linear8(w)


def _decoded_on_workers(client) -> int:
    import tests.stats.test_distributed as me

    return sum(client.run(lambda: me.CALLS[0]).values())


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, worker_class=distributed.Nanny
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as c,
    ):
        yield c


def _run(interp, decoder, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SeegaanWarning)
        return seegaan.sequence(interp, decoder, seed=3, **kw)


def _same(a, b):
    for name in FIELDS:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


@pytest.mark.parametrize(
    "feature,method,correction,null,design",
    [
        ("sex", "class-mean", "maxt", "sign-flip", {}),  # the default null: flips of the weighted null model
        ("age", "linear", "tfce", "permutation", {}),
        # the designs real cohorts have: several images per patient (one sign per patient; patient-label
        # permutations), a confounder (the covariates' null model; Freedman-Lane), cluster mass, a GAM
        ("age", "linear", "maxt", "sign-flip", dict(images_per_patient=3)),
        ("age", "linear", "maxt", "permutation", dict(images_per_patient=3)),
        ("ahf", "class-mean", "maxt", "sign-flip", dict(images_per_patient=2, adjust="age")),
        ("age", "linear", "cluster", "permutation", dict(adjust="sex", cluster_threshold=1.0)),
        ("age", "gam", "maxt", "sign-flip", dict(images_per_patient=2)),
    ],
)
def test_dask_is_bit_identical_to_one_process(client, feature, method, correction, null, design):
    design = dict(design)
    adjust = design.pop("adjust", None)
    if "cluster_threshold" in design:  # low enough for clusters in (almost) every null map
        from seegaan.stats.correction import as_correction

        correction = as_correction(correction, cluster_threshold=design.pop("cluster_threshold"))
    interp = seegaan.interpolate(
        make_cohort(n=48, seed=5, effect=0.5, **design), feature=feature, method=method, steps=3, adjust=adjust
    )
    one = _run(interp, linear8, n_perm=60, correction=correction, null=null, batch_size=16)
    # a different batch size on the workers: tasks of 2 blocks, decoded 20 rows at a time
    dask = _run(interp, SPEC, n_perm=60, correction=correction, null=null, batch_size=20, client=client)
    _same(one, dask)
    assert one.null_max.size == 60 and np.unique(one.null_max).size > 10


def test_a_killed_worker_is_replaced_and_the_result_is_the_same(client):
    interp = seegaan.interpolate(make_cohort(n=40, seed=6), feature="age", method="linear", steps=3)
    one = _run(interp, linear8, n_perm=60, correction="maxt", batch_size=8)
    pids = list(client.run(os.getpid).values())
    killed = []

    def progress(n=1, total=None):
        if total is None and not killed:  # the first task is done, the others are still decoding
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    dask = _run(
        interp,
        "tests.stats.test_distributed:slow_linear8",
        n_perm=60,
        correction="maxt",
        batch_size=8,
        client=client,
        progress=progress,
    )
    assert killed
    _same(one, dask)
    client.wait_for_workers(2, timeout=60)
    assert pids[0] not in client.run(os.getpid).values()


def test_workers_keep_their_null_maps_for_pass_2_when_they_fit(client):
    """With the maps kept on the workers pass 2 decodes nothing (half the decoding of null_cache_mb=0), the
    same bits either way; a worker that decodes tunes glibc's malloc like the seegaan commands."""
    interp = seegaan.interpolate(make_cohort(n=40, seed=7), feature="age", method="linear", steps=3)
    one = _run(interp, linear8, n_perm=64, correction="maxt", batch_size=16)
    spec = "tests.stats.test_distributed:counting_linear8"
    decoded = []
    for cache_mb in (1024, 0):
        before = _decoded_on_workers(client)
        dask = _run(interp, spec, n_perm=64, correction="maxt", batch_size=16, null_cache_mb=cache_mb, client=client)
        decoded.append(_decoded_on_workers(client) - before)
        _same(one, dask)
    assert decoded == [64 * 3, 2 * 64 * 3]
    from seegaan.model import allocator

    if os.environ.get("SEEGAAN_KEEP_FREED_MEMORY", "1") != "0" and os.uname().sysname == "Linux":
        assert all(client.run(lambda: allocator._TUNED).values())


def test_a_worker_lost_between_the_passes_has_its_kept_maps_made_again(client):
    interp = seegaan.interpolate(make_cohort(n=40, seed=8), feature="age", method="linear", steps=3)
    one = _run(interp, linear8, n_perm=64, correction="maxt", batch_size=16)
    client.wait_for_workers(2, timeout=60)
    pids = list(client.run(os.getpid).values())
    done, killed = [0], []

    def progress(n=1, total=None):
        if total is None:
            done[0] += n
            if done[0] == 64:  # pass 1 is over: its maps wait on the workers for pass 2
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])

    dask = _run(interp, SPEC, n_perm=64, correction="maxt", batch_size=16, client=client, progress=progress)
    assert killed
    _same(one, dask)
    client.wait_for_workers(2, timeout=60)


def _thread_counts():
    import numba
    import torch

    return numba.get_num_threads(), torch.get_num_threads()


def test_worker_tasks_keep_to_the_workers_thread_count(client):
    """Dask gives a task OMP_NUM_THREADS threads (1 here); Numba, whose pool is sized by NUMBA_NUM_THREADS
    (all cores), must not leave the worker thread's OpenMP team -- and so torch's next convolutions --
    larger than that (two workers on two cores then stalled each other: 4x slower)."""
    workers = list(client.scheduler_info()["workers"])
    for addr in workers:  # torch started in the worker thread first, as a checkpoint decoder does
        client.submit(_thread_counts, workers=[addr], pure=False).result()
    interp = seegaan.interpolate(make_cohort(n=40, seed=9), feature="age", method="linear", steps=3)
    _run(interp, SPEC, n_perm=64, correction="maxt", batch_size=16, client=client)
    omp = int(os.environ.get("OMP_NUM_THREADS") or 0) or None
    for addr in workers:
        numba_n, torch_n = client.submit(_thread_counts, workers=[addr], pure=False).result()
        assert numba_n == torch_n
        if omp is not None:
            assert (numba_n, torch_n) == (omp, omp)


def test_a_python_decoder_object_cannot_be_shipped(client):
    interp = seegaan.interpolate(make_cohort(n=20, seed=1), feature="age", method="linear", steps=3)
    with pytest.raises(SeegaanError, match="checkpoint path or 'module:callable'") as err:
        _run(interp, linear8, n_perm=20, client=client)
    assert "\n" not in str(err.value)


LOCAL_FIELDS = ("images", "difference", "p_value", "p_adjusted", "significant", "null_max")


@pytest.mark.parametrize(
    "feature,kw",
    [
        ("sex", dict(lambdas="0:1:3")),  # a class: Welch z at w_E
        ("age", dict(values="40,60", method="linear")),  # numeric: the refitted global trajectory
        ("age", dict(values="40,60", method="gam", correction="tfce", statistic="difference")),
    ],
)
def test_local_sequences_on_dask_are_bit_identical(client, feature, kw):
    from seegaan.explain.local import local_sequence

    cohort = make_cohort(n=40, seed=12, images_per_patient=2, effect=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SeegaanWarning)
        one = local_sequence(
            cohort, linear8, image_id="img0003", feature=feature, n_perm=60, seed=4, batch_size=16, **kw
        )
        dask = local_sequence(
            cohort, SPEC, image_id="img0003", feature=feature, n_perm=60, seed=4, batch_size=20, client=client, **kw
        )
    for name in LOCAL_FIELDS:
        assert np.array_equal(getattr(one, name), getattr(dask, name)), name
    assert np.unique(one.null_max).size > 10


def test_a_local_sequence_refuses_a_python_decoder_object_with_a_client(client):
    from seegaan.explain.local import local_sequence

    with pytest.raises(SeegaanError, match="checkpoint path or 'module:callable'") as err:
        local_sequence(make_cohort(n=20, seed=1), linear8, image_id="img0001", feature="sex", n_perm=20, client=client)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "workers,scheduler,message",
    [
        (0, None, "--workers must be at least 1"),
        (-2, None, "--workers must be at least 1"),
        (2, "tcp://127.0.0.1:8786", "not both"),
        (None, "tcp://127.0.0.1:9", "cannot connect to the Dask scheduler"),
    ],
)
def test_client_options_errors_are_one_line(workers, scheduler, message):
    from seegaan.stats.distributed import client_from_options

    start = time.perf_counter()
    with pytest.raises(SeegaanError, match=message) as err:
        with client_from_options(workers, scheduler):
            pass
    assert "\n" not in str(err.value)
    assert time.perf_counter() - start < 30


def test_no_options_no_client_and_a_running_scheduler_connects(client):
    from seegaan.stats.distributed import client_from_options

    with client_from_options(None, None) as none:
        assert none is None
    with client_from_options(None, client.cluster.scheduler_address) as remote:
        assert remote.submit(sum, [1, 2]).result() == 3


def test_a_checkpoint_is_loaded_on_the_device_asked_for_in_every_worker(client, tmp_path):
    """device= travels with the null producer: each worker loads the checkpoint on it (the cache key holds
    it), and the bits are those of one process."""
    pytest.importorskip("torch")
    from seegaan.model import build_networks, small_config
    from seegaan.model.checkpoint import networks_state, save_checkpoint

    cfg = small_config(32, width=8, latent_size=8)
    path = str(save_checkpoint(tmp_path / "tiny.pt", cfg, networks_state(build_networks(cfg, seed=0), None)))
    interp = seegaan.interpolate(make_cohort(n=20, seed=2), feature="sex", method="class-mean", steps=3)
    one = _run(interp, path, n_perm=20, batch_size=8, device="cpu")
    dask = _run(interp, path, n_perm=20, batch_size=8, device="cpu", client=client)
    _same(one, dask)
    assert dask.attrs["precision"] == "fp32 (TF32 off) on cpu"

    def loaded():
        from seegaan import decoding as d

        return {key.rsplit("\0", 1)[0]: str(dec.fn.device) for key, dec in d._DECODERS.items() if key.startswith(path)}

    on_workers = [v for v in client.run(loaded).values() if v]  # keys: path, device, content sha256
    assert on_workers and all(v == {f"{path}\0cpu": "cpu"} for v in on_workers)


def test_workers_start_a_tls_cluster_a_plain_client_cannot_join():
    """``--workers N``: the local scheduler speaks TLS with temporary credentials (issue #24, item 6), so
    another local user without them cannot connect and run code."""
    from seegaan.stats.distributed import client_from_options

    with client_from_options(1, None) as client:
        address = client.scheduler.address
        assert address.startswith("tls://")
        assert client.submit(sum, [1, 2]).result() == 3
        with pytest.raises(Exception):  # noqa: B017 - any refusal will do: the plain client has no credentials
            distributed.Client(address.replace("tls://", "tcp://"), timeout=3, set_as_default=False).close()


def test_a_scheduler_that_never_answers_fails_within_the_stated_time():
    """An endpoint that accepts the TCP connection and never answers (issue #24, item 7): one line within
    CONNECT_TIMEOUT + 1 s, not a hang."""
    import socket
    import threading

    from seegaan.stats.distributed import CONNECT_TIMEOUT, client_from_options

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    held = []
    threading.Thread(target=lambda: held.extend(server.accept() for _ in range(3)), daemon=True).start()
    start = time.perf_counter()
    with pytest.raises(SeegaanError, match="cannot connect to the Dask scheduler") as err:
        with client_from_options(None, f"tcp://127.0.0.1:{server.getsockname()[1]}"):
            pass
    assert "\n" not in str(err.value)
    assert time.perf_counter() - start < CONNECT_TIMEOUT + 4
    server.close()
