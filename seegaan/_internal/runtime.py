"""Scoped runtime settings: thread limits for torch / Numba / BLAS, and strict fp32 decoding.

Both context managers change process-wide library settings only for the duration of a ``with``
block and restore every previous value on exit, also when the body raises.

:func:`limit_threads`
    ``with limit_threads(n):`` limits torch (``torch.set_num_threads``), Numba
    (``numba.set_num_threads``, capped at ``numba.config.NUMBA_NUM_THREADS``) and the BLAS/OpenMP
    pools that are loaded (threadpoolctl's ``threadpool_limits``) to ``n`` threads together.
    ``n=None`` or ``0`` leaves the libraries' defaults. torch and Numba are touched only when the
    caller has already imported them (``sys.modules``), so limiting threads never imports torch
    for a statistics-only command; ``torch=True`` imports and limits torch anyway (use it when the
    body will import torch itself, e.g. loading a decoder lazily). Numba's setting is per calling
    thread, as Numba defines it.

:func:`strict_fp32`
    ``with strict_fp32(device) as record:`` makes torch compute in IEEE fp32: TF32 off for cuBLAS
    matmuls and cuDNN convolutions/RNNs (on by default for cuDNN!), ``float32_matmul_precision``
    ``"highest"``, and -- on torch >= 2.9, which has the ``torch.backends.*.fp32_precision``
    API -- ``"ieee"`` for cuda.matmul, cudnn(.conv/.rnn) and mkldnn(.matmul/.conv/.rnn) (the oneDNN
    ones matter on CPU: ``float32_matmul_precision("medium")`` lets oneDNN matmuls run in bf16).
    ``record`` is :func:`precision_record` for ``device``, a string for output attrs.

Recommended CLI default for ``--threads``
-----------------------------------------
**0 = the libraries' defaults (all cores) for a machine the job has to itself; 1 whenever the
machine is shared** (several seegaan jobs side by side, CI, a busy server). Measured on the 2-vCPU
development machine (Intel Xeon, torch 2.13.0+cpu, Numba 0.68.1) while other jobs kept its
load average at 4-8: decoding 64 latents (64 x 64 images, strict fp32) with the demo checkpoint
``seegaan/demo/phantom_model.pt``, 3 alternating repeats each, median 1 thread 0.12-0.20 s,
2 threads 0.45-1.13 s -- 2 threads were **3-7x slower** than 1 in five runs (t1/t2 = 0.13-0.32),
because OpenMP teams of 2 stall whenever another process holds one of the cores. An idle
machine could not be measured; there more threads are expected to help (and the Numba
permutation kernels scale with cores on large images), so 1 is not forced as the default.
"""

from __future__ import annotations

import contextlib
import numbers
import sys
import warnings
from collections.abc import Iterator

import scipy.linalg  # noqa: F401  (the BLAS the statistics use: loaded before any thread limit is set)

from seegaan._internal.errors import SeegaanError

__all__ = ["limit_threads", "thread_settings", "thread_record", "strict_fp32", "precision_record", "precision_settings"]


# --------------------------------------------------------------------------------------------
# threads
# --------------------------------------------------------------------------------------------


def _check_threads(n) -> int:
    if n is None:
        return 0
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise SeegaanError(f"--threads must be a whole number: 0 (the libraries' defaults) or more (got {n!r})")
    n = int(n)
    if n < 0:
        raise SeegaanError(f"--threads must be 0 (the libraries' defaults) or more (got {n})")
    return n


def _threadpoolctl():
    try:
        import threadpoolctl  # deferred: threadpoolctl (optional here)
    except ImportError:  # pragma: no cover - a declared dependency
        warnings.warn(
            "threadpoolctl is not installed: BLAS/OpenMP thread pools are not limited", RuntimeWarning, stacklevel=3
        )
        return None
    return threadpoolctl


@contextlib.contextmanager
def limit_threads(n: int | None, *, torch: bool | None = None) -> Iterator[dict]:
    """Limit torch, Numba and BLAS/OpenMP to ``n`` threads inside the ``with`` block.

    Parameters
    ----------
    n : int or None
        Threads per library; ``None`` or ``0`` leaves every library as it is.
    torch : bool or None
        ``None`` (default): limit torch only if it is already imported. ``True``: import torch
        and limit it. ``False``: do not call ``torch.set_num_threads`` (torch's OpenMP pool may
        still be limited, through threadpoolctl, when it is the same OpenMP runtime, e.g. libgomp).

    Yields
    ------
    dict
        :func:`thread_settings` as they are inside the block.

    Raises
    ------
    SeegaanError
        If ``n`` is not an integer >= 0 (one line, phrased for the ``--threads`` option).
    """
    n = _check_threads(n)
    if n == 0:
        yield thread_settings()
        return
    with contextlib.ExitStack() as stack:
        tpc = _threadpoolctl()
        if tpc is not None:
            stack.enter_context(tpc.threadpool_limits(limits=n))

        use_torch = ("torch" in sys.modules) if torch is None else bool(torch)
        if use_torch:
            import torch as _torch  # deferred: torch (heavy)

            prev_torch = _torch.get_num_threads()
            stack.callback(_torch.set_num_threads, prev_torch)
            _torch.set_num_threads(n)

        if "numba" in sys.modules:
            import numba  # deferred: numba (JIT start-up)

            prev_numba = numba.get_num_threads()
            stack.callback(numba.set_num_threads, prev_numba)
            numba.set_num_threads(max(1, min(n, int(numba.config.NUMBA_NUM_THREADS))))

        yield thread_settings()


def command_threads(n: int | None, *, torch: bool = True):
    """``--threads N`` of a command: :func:`limit_threads` with every library the work uses loaded first.

    :func:`limit_threads` limits what is loaded when it starts; a library first imported inside the block
    (or Numba's threading layer first started there, which may reset the OpenMP pool) would keep or reset
    its defaults. So Numba (with its threading layer started), SciPy's BLAS and, with ``torch=True``,
    torch are imported before limiting. ``n`` 0 or None leaves the libraries' defaults (and imports
    nothing).
    """
    if _check_threads(n):
        import numba  # deferred: numba (JIT start-up)

        numba.get_num_threads()  # starts Numba's threading layer before the limit
        if torch:
            # deferred: torch (heavy)
            import torch as _torch  # noqa: F401
    return limit_threads(n or None, torch=torch)


def thread_settings() -> dict:
    """The current thread counts: ``{"torch": int | None, "numba": int | None, "numba_max": int | None,
    "blas": [{"user_api", "internal_api", "prefix", "num_threads"}, ...]}``.

    torch / Numba are ``None`` when not imported (they are not imported to find out); ``blas``
    lists the BLAS and OpenMP pools threadpoolctl finds loaded (``None`` without threadpoolctl).
    """
    out: dict = {"torch": None, "numba": None, "numba_max": None, "blas": None}
    if "torch" in sys.modules:
        import torch  # deferred: torch (heavy)

        out["torch"] = int(torch.get_num_threads())
    if "numba" in sys.modules:
        import numba  # deferred: numba (JIT start-up)

        out["numba"] = int(numba.get_num_threads())
        out["numba_max"] = int(numba.config.NUMBA_NUM_THREADS)
    try:
        import threadpoolctl  # deferred: threadpoolctl (optional here)
    except ImportError:  # pragma: no cover
        return out
    out["blas"] = [
        {k: info.get(k) for k in ("user_api", "internal_api", "prefix", "num_threads")}
        for info in threadpoolctl.threadpool_info()
    ]
    return out


def thread_record(settings: dict | None = None) -> str:
    """:func:`thread_settings` as one string for output attrs, e.g.
    ``"torch 1, numba 1/2, openblas 1 (libopenblas), openmp 1 (libgomp)"``."""
    s = thread_settings() if settings is None else settings
    parts = []
    if s.get("torch") is not None:
        parts.append(f"torch {s['torch']}")
    if s.get("numba") is not None:
        parts.append(f"numba {s['numba']}/{s['numba_max']}")
    for p in s.get("blas") or []:
        parts.append(f"{p['internal_api']} {p['num_threads']} ({p['prefix']})")
    return ", ".join(parts) or "library defaults"


# --------------------------------------------------------------------------------------------
# strict fp32
# --------------------------------------------------------------------------------------------

# torch.backends.*.fp32_precision (torch >= 2.9), parents before children: setting a parent
# rewrites its children, so restoring in this order gives back every leaf exactly.
_FP32_PRECISION_PATHS = (
    "",
    "cuda.matmul",
    "cudnn",
    "cudnn.conv",
    "cudnn.rnn",
    "mkldnn",
    "mkldnn.matmul",
    "mkldnn.conv",
    "mkldnn.rnn",
)


def _backend(torch, path: str):
    obj = torch.backends
    for part in filter(None, path.split(".")):
        obj = getattr(obj, part)
    return obj


def _new_api(torch) -> dict:
    """``{path: fp32_precision}`` for the paths this torch has (empty before torch 2.9)."""
    out = {}
    for path in _FP32_PRECISION_PATHS:
        try:
            out[path] = _backend(torch, path).fp32_precision
        except (AttributeError, RuntimeError):
            continue
    return out


def _legacy_flag(getter):
    # torch >= 2.9 raises when the legacy flag and the new fp32_precision API disagree
    try:
        return bool(getter())
    except RuntimeError:
        return None


def precision_settings() -> dict:
    """Every torch fp32 precision setting that :func:`strict_fp32` changes (imports torch)."""
    import torch  # deferred: torch (heavy)

    return {
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "cuda.matmul.allow_tf32": _legacy_flag(lambda: torch.backends.cuda.matmul.allow_tf32),
        "cudnn.allow_tf32": _legacy_flag(lambda: torch.backends.cudnn.allow_tf32),
        "fp32_precision": _new_api(torch),
    }


def _set_new_api(torch, values: dict) -> None:
    for path in _FP32_PRECISION_PATHS:
        if path in values:
            _backend(torch, path).fp32_precision = values[path]


def _restore(torch, saved: dict) -> None:
    # legacy setters also rewrite the new API values, so they go first
    if saved["cudnn.allow_tf32"] is not None:
        torch.backends.cudnn.allow_tf32 = saved["cudnn.allow_tf32"]
    if saved["cuda.matmul.allow_tf32"] is not None:
        torch.backends.cuda.matmul.allow_tf32 = saved["cuda.matmul.allow_tf32"]
    torch.set_float32_matmul_precision(saved["float32_matmul_precision"])
    _set_new_api(torch, saved["fp32_precision"])


@contextlib.contextmanager
def strict_fp32(device=None) -> Iterator[str]:
    """Compute in IEEE fp32 (no TF32, no bf16 matmuls) inside the ``with`` block.

    The flags are process-wide and set for every backend whatever ``device`` is (cuBLAS/cuDNN
    TF32 and oneDNN reduced precision on CPU); ``device`` (default ``"cpu"``) only names the
    device in the yielded :func:`precision_record` string. Every previous value is restored on
    exit, also when the body raises. Not thread-safe against other threads changing the flags.
    If the caller had mixed torch's legacy ``allow_tf32`` flags with the new ``fp32_precision``
    API so that torch refuses to read a legacy flag, that unreadable flag stays off afterwards;
    everything readable (all ``fp32_precision`` values included) is restored exactly.
    """
    import torch  # deferred: torch (heavy)

    saved = precision_settings()
    try:
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")
        _set_new_api(torch, {path: "ieee" for path in saved["fp32_precision"]})
        yield precision_record(device)
    finally:
        _restore(torch, saved)


def _effective(values: dict, path: str, default: str) -> str:
    """The fp32_precision that applies to ``path``: its own, else its parents', else ``default``."""
    parts = path.split(".")
    for k in range(len(parts), -1, -1):
        v = values.get(".".join(parts[:k]))
        if v not in (None, "none"):
            return v
    return default


def precision_record(device=None) -> str:
    """How torch computes fp32 on ``device`` now, for output attrs (imports torch).

    ``"fp32 (TF32 off) on cpu"`` when matmuls and convolutions run in IEEE fp32; otherwise the
    reduced precisions allowed, e.g. ``"fp32 (TF32 allowed for cudnn.conv) on cuda:0 (NVIDIA H200)"``.
    """
    import torch  # deferred: torch (heavy)

    dev = torch.device("cpu" if device is None else device)
    s = precision_settings()
    new = s["fp32_precision"]
    mm = s["float32_matmul_precision"]
    reduced = []  # (precision, op)
    if dev.type == "cuda":
        if mm != "highest" or s["cuda.matmul.allow_tf32"] or _effective(new, "cuda.matmul", "ieee") == "tf32":
            reduced.append(("TF32", "matmul"))
        if new:
            for op in ("conv", "rnn"):
                if _effective(new, f"cudnn.{op}", "tf32" if s["cudnn.allow_tf32"] is not False else "ieee") != "ieee":
                    reduced.append(("TF32", f"cudnn.{op}"))
        elif s["cudnn.allow_tf32"]:
            reduced.append(("TF32", "cudnn"))
    elif dev.type == "cpu":
        for op in ("matmul", "conv", "rnn"):
            default = {"high": "tf32", "medium": "bf16"}.get(mm, "ieee") if op == "matmul" else "ieee"
            p = _effective(new, f"mkldnn.{op}", default) if new else default
            if p != "ieee":
                reduced.append((p.upper(), f"mkldnn.{op}"))
    where = str(dev)
    if dev.type == "cuda" and torch.cuda.is_available():
        with contextlib.suppress(Exception):
            where += f" ({torch.cuda.get_device_name(dev)})"
    if not reduced:
        return f"fp32 (TF32 off) on {where}"
    allowed = "; ".join(f"{p} allowed for {op}" for p, op in reduced)
    return f"fp32 ({allowed}) on {where}"
