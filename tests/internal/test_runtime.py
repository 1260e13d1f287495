"""seegaan._internal.runtime: scoped thread limits (torch / Numba / BLAS) and strict fp32.

Every test leaves the process-wide settings as it found them (the autouse fixture restores them
even if an assertion fails half-way).
"""

import subprocess
import sys

import numba
import numpy as np
import pytest
import threadpoolctl
import torch

from seegaan._internal.errors import SeegaanError
from seegaan._internal.runtime import limit_threads, precision_record, precision_settings, strict_fp32, thread_record


def _blas():
    return {(i["prefix"], i["user_api"]): i["num_threads"] for i in threadpoolctl.threadpool_info()}


def _threads():
    return torch.get_num_threads(), numba.get_num_threads(), _blas()


def _set_precision(saved):
    from seegaan._internal.runtime import _restore

    _restore(torch, saved)


@pytest.fixture(autouse=True)
def _keep_global_settings():
    t, nb, info = torch.get_num_threads(), numba.get_num_threads(), threadpoolctl.threadpool_info()
    prec = precision_settings()
    try:
        yield
    finally:
        torch.set_num_threads(t)
        numba.set_num_threads(nb)
        threadpoolctl.threadpool_limits(limits={i["prefix"]: i["num_threads"] for i in info})
        _set_precision(prec)


# ------------------------------------------------------------------------------------ threads


def test_limit_threads_sets_one_and_restores():
    torch.set_num_threads(3)  # a value distinct from 1 and from the defaults
    before = _threads()
    assert _blas(), "threadpoolctl should see numpy's BLAS"
    with limit_threads(1) as inside:
        assert torch.get_num_threads() == 1
        assert numba.get_num_threads() == 1
        assert set(_blas().values()) == {1}
        assert inside["torch"] == inside["numba"] == 1
        assert {p["num_threads"] for p in inside["blas"]} == {1}
    assert _threads() == before


def test_limit_threads_restores_when_the_body_raises():
    before = _threads()
    with pytest.raises(RuntimeError, match="boom"):
        with limit_threads(1):
            assert _threads()[:2] == (1, 1)
            raise RuntimeError("boom")
    assert _threads() == before


def test_limit_threads_nested():
    before = _threads()
    with limit_threads(2):
        with limit_threads(1):
            assert _threads()[:2] == (1, 1)
        assert torch.get_num_threads() == 2
        assert numba.get_num_threads() == min(2, numba.config.NUMBA_NUM_THREADS)
    assert _threads() == before


@pytest.mark.parametrize("n", [None, 0])
def test_zero_and_none_leave_the_defaults(n):
    before = _threads()
    with limit_threads(n) as inside:
        assert _threads() == before
        assert inside["torch"] == before[0] and inside["numba"] == before[1]
    assert _threads() == before


def test_numba_is_capped_at_numba_num_threads():
    cap = numba.config.NUMBA_NUM_THREADS
    with limit_threads(cap + 1):
        assert numba.get_num_threads() == cap
        assert torch.get_num_threads() == cap + 1


def test_bad_thread_counts_are_one_line_errors():
    with pytest.raises(SeegaanError) as err:
        with limit_threads(-1):
            pass
    assert str(err.value) == "--threads must be 0 (the libraries' defaults) or more (got -1)"
    for bad in (1.5, "2", True):
        with pytest.raises(SeegaanError, match=r"^--threads must be") as err:
            with limit_threads(bad):
                pass
        assert "\n" not in str(err.value)
    assert limit_threads.__module__ == "seegaan._internal.runtime"
    with limit_threads(np.int64(1)):  # numpy integers are integers
        assert torch.get_num_threads() == 1


@numba.njit(parallel=True, cache=False)
def _thread_ids(n):
    ids = np.empty(n, np.int64)
    for i in numba.prange(n):
        ids[i] = numba.get_thread_id()
    return ids, numba.get_num_threads()


def test_numba_parallel_kernel_runs_on_one_thread():
    with limit_threads(1):
        ids, inside = _thread_ids(10_000)
    assert inside == 1
    assert set(ids.tolist()) == {0}


def test_thread_record_is_one_line():
    with limit_threads(1) as s:
        rec = thread_record(s)
    assert rec.startswith("torch 1, numba 1/") and "\n" not in rec
    assert thread_record({"torch": None, "numba": None, "blas": []}) == "library defaults"


def test_import_and_limit_do_not_import_torch_or_numba():
    code = (
        "import sys\n"
        "import numpy\n"
        "import seegaan._internal.runtime as r\n"
        "with r.limit_threads(1) as s:\n"
        "    assert s['torch'] is None and s['numba'] is None, s\n"
        "    assert {p['num_threads'] for p in s['blas']} == {1}, s\n"
        "assert 'torch' not in sys.modules and 'numba' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_torch_flag_forces_or_skips_torch():
    torch.set_num_threads(2)
    with limit_threads(1, torch=False):  # torch's OpenMP pool may still follow threadpoolctl's limit
        assert numba.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with limit_threads(1, torch=True):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


# ---------------------------------------------------------------------------------- fp32


def _allow_everything():
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.set_float32_matmul_precision("high")


def _check_strict():
    assert torch.backends.cuda.matmul.allow_tf32 is False
    assert torch.backends.cudnn.allow_tf32 is False
    assert torch.get_float32_matmul_precision() == "highest"
    new = precision_settings()["fp32_precision"]
    if hasattr(torch.backends, "fp32_precision"):  # torch >= 2.9
        assert new and set(new.values()) == {"ieee"}, new


def test_strict_fp32_sets_and_restores():
    _allow_everything()
    before = precision_settings()
    assert before["cuda.matmul.allow_tf32"] is True and before["cudnn.allow_tf32"] is True
    with strict_fp32() as record:
        _check_strict()
        assert record == "fp32 (TF32 off) on cpu"
        assert precision_record("cpu") == "fp32 (TF32 off) on cpu"
        assert precision_record("cuda:0").startswith("fp32 (TF32 off) on cuda:0")
    assert torch.backends.cuda.matmul.allow_tf32 is True
    assert torch.backends.cudnn.allow_tf32 is True
    assert torch.get_float32_matmul_precision() == "high"
    assert precision_settings() == before


def test_strict_fp32_restores_when_the_body_raises():
    _allow_everything()
    before = precision_settings()
    with pytest.raises(KeyError):
        with strict_fp32("cpu"):
            _check_strict()
            raise KeyError("x")
    assert precision_settings() == before


def test_strict_fp32_gives_back_bf16_and_mixed_api_settings_exactly():
    torch.set_float32_matmul_precision("medium")  # lets oneDNN matmuls on CPU run in bf16
    if hasattr(torch.backends, "fp32_precision"):
        assert torch.backends.mkldnn.matmul.fp32_precision == "bf16"
        torch.backends.cudnn.conv.fp32_precision = "ieee"  # mixed legacy/new cuDNN state
    before = precision_settings()
    assert "BF16 allowed for mkldnn.matmul" in precision_record("cpu")
    with strict_fp32("cpu") as record:
        _check_strict()
        assert record == "fp32 (TF32 off) on cpu"
    assert precision_settings() == before
    assert torch.get_float32_matmul_precision() == "medium"


def test_precision_record_names_what_is_allowed():
    _allow_everything()
    rec = precision_record(torch.device("cuda", 0))
    assert rec.startswith("fp32 (TF32 allowed for matmul") and "on cuda:0" in rec
    torch.set_float32_matmul_precision("highest")
    torch.backends.cudnn.allow_tf32 = True
    assert "TF32 allowed for cudnn.conv" in precision_record("cuda")
    assert precision_record(None) == "fp32 (TF32 off) on cpu"


def test_strict_fp32_decodes_like_plain_fp32_on_cpu():
    torch.manual_seed(0)
    lin = torch.nn.Linear(16, 8)
    x = torch.randn(4, 16)
    ref = (x.double() @ lin.weight.double().T + lin.bias.double()).float()
    with strict_fp32():
        out = lin(x)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ --threads of the commands


def _recording(monkeypatch):
    """Wrap the permutation engine (as bound in seegaan.sequences and in seegaan.stats.engine) so that it
    records :func:`thread_settings` while the statistics run."""
    import seegaan.sequences
    import seegaan.stats.engine
    from seegaan._internal.runtime import thread_settings

    seen = []
    real = seegaan.stats.engine.permutation_test

    def wrapper(*args, **kwargs):
        seen.append(thread_settings())
        return real(*args, **kwargs)

    monkeypatch.setattr(seegaan.sequences, "permutation_test", wrapper)
    monkeypatch.setattr(seegaan.stats.engine, "permutation_test", wrapper)
    return seen


def _all_one(settings):
    return settings["numba"] == 1 and settings["blas"] and {p["num_threads"] for p in settings["blas"]} == {1}


@pytest.mark.parametrize("command", ["interpolate", "local"])
def test_threads_one_limits_numba_and_blas_during_the_statistics(command, monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from seegaan.cli.stats import app
    from seegaan.cli.stats_explain import register as register_explain
    from seegaan.data.cohort import save_cohort
    from seegaan.testing.cohorts import make_cohort

    if command not in {c.name for c in app.registered_commands}:
        register_explain(app)
    cohort = tmp_path / "c.nc"
    save_cohort(make_cohort(n=30), cohort)
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)  # more than one where the machine has cores
    threadpoolctl.threadpool_limits(limits=2)
    seen = _recording(monkeypatch)
    extra = ["--image", "img0003", "--lambdas", "0:1:3"] if command == "local" else ["--steps", "3"]
    r = CliRunner().invoke(
        app,
        [
            command,
            "--feature",
            "sex",
            "--cohort",
            str(cohort),
            "--decoder",
            "seegaan.testing.decoders:linear8",
            "--perm",
            "20",
            "--threads",
            "1",
            "--no-plot",
            "--out",
            str(tmp_path / "s.nc"),
            *extra,
        ],
    )
    assert r.exit_code == 0, r.output
    assert len(seen) == 1 and _all_one(seen[0]), seen
    assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS  # restored after the command


_FRESH = """
import sys
import seegaan.sequences, seegaan.stats.engine
from seegaan._internal.runtime import thread_settings
seen, real = [], seegaan.stats.engine.permutation_test
def wrapper(*a, **k):
    import numba  # what the kernels will run with, once imported
    seen.append((thread_settings(), numba.get_num_threads()))
    return real(*a, **k)
seegaan.sequences.permutation_test = seegaan.stats.engine.permutation_test = wrapper
assert "numba" not in sys.modules
from seegaan.cli.stats import app
rc = app(sys.argv[1:], standalone_mode=False)
s, nb = seen[0]
assert rc in (0, None) and nb == 1 and {p["num_threads"] for p in s["blas"]} == {1}, (rc, nb, s)
"""


@pytest.mark.parametrize("command", ["interpolate", "local"])
def test_threads_one_in_a_fresh_process(command, tmp_path):
    """As above in a new process where Numba is not imported yet and the defaults are 2 threads."""
    import os

    from seegaan.data.cohort import save_cohort
    from seegaan.testing.cohorts import make_cohort
    from tests.conftest import REPO

    cohort = tmp_path / "c.nc"
    save_cohort(make_cohort(n=30), cohort)
    extra = ["--image", "img0003", "--lambdas", "0:1:3"] if command == "local" else ["--steps", "3"]
    env = {
        **os.environ,
        "NUMBA_NUM_THREADS": "2",
        "OMP_NUM_THREADS": "2",
        "OPENBLAS_NUM_THREADS": "2",
        "MPLBACKEND": "Agg",
        "PYTHONPATH": str(REPO),
    }
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            _FRESH,
            command,
            "--feature",
            "sex",
            "--cohort",
            str(cohort),
            "--decoder",
            "seegaan.testing.decoders:linear8",
            "--perm",
            "20",
            "--threads",
            "1",
            "--no-plot",
            "--out",
            str(tmp_path / "s.nc"),
            *extra,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
