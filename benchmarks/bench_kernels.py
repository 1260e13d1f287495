"""Benchmark the streaming permutation kernels against a plain NumPy copy of the same bytes.

A batch of ``nb`` null difference maps of ``steps`` x ``size`` x ``size`` float32 pixels (the realistic
shape: 10 steps of 256x256, M = 655,360) is pushed through

* ``accumulate_exceedances`` (counts + float64 sums, state reused across calls as in streaming), and
* ``accumulate_maxima`` (Westfall-Young max-T maxima),

with the Numba and the NumPy backends, next to ``np.copyto(dst, null)``. Bandwidth is the bytes of the
float32 null batch divided by the time (the copy also writes as many bytes, the kernels read and write
their per-pixel state). All methods run round-robin in the same process, so machine noise hits them
alike; the table shows medians and each kernel as a fraction of the copy's bandwidth.

The first-call cost (Numba import + cache load, or a cold compile) is measured in fresh subprocesses.

Usage::

    python benchmarks/bench_kernels.py [--nb 16] [--steps 10] [--size 256] [--repeat 30]
                                       [--out benchmarks/output/kernels.json]
    python benchmarks/bench_kernels.py --quick   # smoke run in seconds (tested): 4 maps of 3x64x64,
                                                 # 5 rounds, one Numba thread, first calls still timed;
                                                 # no JSON unless --out
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

import seegaan_kernels as sk
from seegaan._internal.io import atomic_path

DEFAULT_OUT = Path(__file__).resolve().parent / "output" / "kernels.json"

FIRST_CALL_SCRIPT = """
import time
t0 = time.perf_counter()
import numpy as np
import seegaan_kernels as sk
null = np.zeros((4, 1000), np.float32)
sk.accumulate_exceedances(null, np.zeros(1000, np.float32), 0, np.zeros(1000, np.int64), np.zeros(1000),
                          np.zeros(1000))
sk.accumulate_maxima(null, np.ones(1000), 0)
print(time.perf_counter() - t0)
"""


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nb", type=int, default=16, help="null maps per batch (default 16)")
    parser.add_argument("--steps", type=int, default=10, help="sequence steps K (default 10)")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    parser.add_argument("--repeat", type=int, default=30, help="timed rounds per method (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first (default 3)")
    parser.add_argument(
        "--alternative",
        choices=sorted(sk.ALTERNATIVE_CODES),
        default="two-sided",
        help="pixel statistic (default two-sided)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random null batch (default 0)")
    parser.add_argument("--threads", type=int, default=None, help="numba threads (default: all cores)")
    parser.add_argument("--no-first-call", action="store_true", help="skip the subprocess first-call timings")
    parser.add_argument(
        "--out", type=Path, default=None, help=f"JSON output (default {DEFAULT_OUT}; none with --quick)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 4 maps of 3x64x64, 5 rounds, 1 warm-up, one Numba thread unless "
        "--threads; writes no JSON unless --out",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.nb, args.steps, args.size, args.repeat, args.warmup = 4, 3, 64, 5, 1
        if args.threads is None:
            args.threads = 1
    elif args.out is None:
        args.out = DEFAULT_OUT
    return args


def make_methods(null: np.ndarray, observed: np.ndarray, scale: np.ndarray, alternative: str) -> dict:
    """Return name -> zero-argument callable, each touching the whole null batch once."""
    m = null.shape[1]
    dst = np.empty_like(null)
    state = {name: (np.zeros(m, np.int64), np.zeros(m), np.zeros(m)) for name in ("numba", "numpy")}

    def exceed(backend):
        counts, total, total_sq = state[backend]
        return lambda: sk.accumulate_exceedances(null, observed, alternative, counts, total, total_sq, backend=backend)

    def maxima(backend):
        return lambda: sk.accumulate_maxima(null, scale, alternative, backend=backend)

    return {
        "copy (np.copyto)": lambda: np.copyto(dst, null),
        "exceedances numba": exceed("numba"),
        "exceedances numpy": exceed("numpy"),
        "maxima numba": maxima("numba"),
        "maxima numpy": maxima("numpy"),
    }


def time_round_robin(methods: dict, *, repeat: int, warmup: int) -> dict:
    """Time every method ``repeat`` times, interleaved; return name -> list of seconds."""
    for _ in range(warmup):
        for call in methods.values():
            call()
    times = {name: [] for name in methods}
    for _ in range(repeat):
        for name, call in methods.items():
            t0 = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - t0)
    return times


def first_call_seconds(*, cold: bool) -> float:
    """Time import + first calls in a fresh interpreter; ``cold`` compiles into an empty cache."""
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as cache_dir:
        if cold:
            env["NUMBA_CACHE_DIR"] = cache_dir
        done = subprocess.run(
            [sys.executable, "-c", FIRST_CALL_SCRIPT], env=env, capture_output=True, text=True, check=True
        )
    return float(done.stdout.strip().splitlines()[-1])


def machine_info() -> dict:
    info = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "has_numba": sk.has_numba(),
    }
    try:
        with open("/proc/cpuinfo") as fh:
            names = [line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")]
        info["cpu"] = names[0] if names else platform.processor()
    except OSError:
        info["cpu"] = platform.processor()
    if sk.has_numba():
        import numba

        info.update(
            numba=numba.__version__, numba_threads=numba.get_num_threads(), threading_layer=numba.threading_layer()
        )
    return info


def summarise(times: dict, nbytes: int) -> list[dict]:
    copy_median = float(np.median(times["copy (np.copyto)"]))
    copy_best = float(np.min(times["copy (np.copyto)"]))
    rows = []
    for name, ts in times.items():
        median, best = float(np.median(ts)), float(np.min(ts))
        rows.append(
            {
                "method": name,
                "median_s": median,
                "best_s": best,
                "gb_per_s_median": nbytes / median / 1e9,
                "gb_per_s_best": nbytes / best / 1e9,
                "fraction_of_copy_median": copy_median / median,
                "fraction_of_copy_best": copy_best / best,
            }
        )
    return rows


def print_table(rows: list[dict], header: str) -> None:
    print(header)
    print(
        f"{'method':<20} {'median ms':>10} {'best ms':>9} {'GB/s med':>9} {'GB/s best':>10} "
        f"{'x copy med':>11} {'x copy best':>12}"
    )
    for r in rows:
        print(
            f"{r['method']:<20} {r['median_s'] * 1e3:>10.2f} {r['best_s'] * 1e3:>9.2f} "
            f"{r['gb_per_s_median']:>9.2f} {r['gb_per_s_best']:>10.2f} "
            f"{r['fraction_of_copy_median']:>11.2f} {r['fraction_of_copy_best']:>12.2f}"
        )


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads is not None and sk.has_numba():
        import numba

        numba.set_num_threads(args.threads)
    info = machine_info()
    first_call = {}
    if not args.no_first_call and sk.has_numba():
        first_call = {"cached_s": first_call_seconds(cold=False), "cold_compile_s": first_call_seconds(cold=True)}

    rng = np.random.default_rng(args.seed)
    m = args.steps * args.size * args.size
    null = rng.standard_normal((args.nb, m), dtype=np.float32)
    observed = rng.standard_normal(m, dtype=np.float32)
    scale = 1.0 / (rng.random(m) + 0.5)
    scale[: args.size * args.size] = 0.0  # step 0 has no variance: skipped, as in real use

    times = time_round_robin(
        make_methods(null, observed, scale, args.alternative), repeat=args.repeat, warmup=args.warmup
    )
    rows = summarise(times, null.nbytes)
    header = (
        f"nb={args.nb} maps of {args.steps}x{args.size}x{args.size} float32 "
        f"({null.nbytes / 1e6:.1f} MB per batch), {args.alternative}, {args.repeat} rounds; {info.get('cpu')}, "
        f"{info.get('numba_threads', 1)} numba threads"
    )
    print_table(rows, header)
    if first_call:
        print(
            f"first call in a fresh process: {first_call['cached_s']:.2f} s with the on-disk cache, "
            f"{first_call['cold_compile_s']:.2f} s compiling from scratch"
        )

    result = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *(sys.argv[1:] if argv is None else argv)]),
        "shape": {"nb": args.nb, "steps": args.steps, "size": args.size, "M": m},
        "bytes_per_batch": int(null.nbytes),
        "repeat": args.repeat,
        "seed": args.seed,
        "alternative": args.alternative,
        "machine": info,
        "first_call": first_call,
        "results": rows,
        "times_s": times,
    }
    if args.out is None:
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out, overwrite=True) as tmp:
        tmp.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
