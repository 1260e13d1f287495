"""The default main job on the bundled demo: how much of its wall time is decoding?

Runs what ``seegaan-stats interpolate --feature bnpp --no-plot`` runs (GAM λ = 0.6, the sign-flip null with
one sign per patient, B = 1,000, max-T, batch 16, the netCDF written) through the API, with the CLI's settings:
``keep_freed_memory()`` (glibc keeps freed large blocks; the CLI calls it before decoding a checkpoint)
and ``command_threads(1)`` (torch, Numba and BLAS on one thread, the ``--threads 1`` default). The
decoder is wrapped so that every call to it is timed, and the null trajectories are timed the same way.
Prints the wall time split: decoding, null trajectories, the rest (interpolation, permutation plan,
kernels, writing) and the share of decoding.

``--no-keep-freed`` leaves glibc's malloc at its defaults (freed large blocks go back to the OS, so every
convolution output is fresh, zero-filled pages); ``--runs N`` runs the job N times in the one process
(the first run is what the CLI sees; the later ones show the cost of a cold process).

``--null permutation`` runs the permutation null (patient-label permutations) instead; ``--compare-nulls``
runs both, alternating, for ``--repeat`` rounds: the cost of the default null against the permutation null
(the default of earlier versions) on the same machine load.

``--old-null`` computes the patient-label null trajectories the way they were computed before the
normal-equation path: one n x p QR refit per permutation (``penalised_map``); BLAS is now on one thread
for it too (``command_threads(1)``; the numbers in README.md for it were taken with BLAS threads as the
environment left them). ``--compare`` runs both, alternating (new, old, new, old, ...), for ``--repeat``
rounds, so that both see the same machine load.

    python benchmarks/bench_main_job.py                # B = 1,000
    python benchmarks/bench_main_job.py --compare      # new and old null side by side
    python benchmarks/bench_main_job.py --quick        # B = 20, a few seconds
    python benchmarks/bench_main_job.py --perm 200 --runs 3 [--no-keep-freed]   # 1st run vs repeats
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


class _Clock:
    """Wall time spent inside the callables it wraps (a call made from inside another counts once)."""

    def __init__(self):
        self.seconds = 0.0
        self._depth = 0

    def wrap(self, fn):
        clock = self

        class Timed:
            def __call__(self, *args, **kwargs):
                if clock._depth:
                    return fn(*args, **kwargs)
                clock._depth += 1
                t0 = time.perf_counter()
                try:
                    return fn(*args, **kwargs)
                finally:
                    clock.seconds += time.perf_counter() - t0
                    clock._depth -= 1

            def __getattr__(self, name):  # batch_invariant, device, autocast_bf16, ... of the decoder
                return getattr(fn, name)

        return Timed()


def _old_null_trajectory(interp):
    """The patient-label null as before: the operator rebuilt from x[idx] (an n x p QR) per permutation."""
    from seegaan.interpolation.methods import apply as _apply

    new = interp.null_trajectory

    def null_trajectory(idx, scheme):
        if scheme == "patient-label":
            return _apply(interp._spec.operator(interp._x[idx], interp._Z), interp._latents)[0]
        return new(idx, scheme)

    return null_trajectory


def run(n_perm: int, *, old_null: bool = False, feature: str = "bnpp", null_kind: str = "sign-flip") -> dict:
    """One main job; returns seconds (total, decoding, null trajectories) and the decoding share."""

    from seegaan import demo
    from seegaan.data.cohort import open_cohort
    from seegaan.decoder import Decoder, load_decoder
    from seegaan.interpolation import interpolate
    from seegaan.sequences import sequence

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        interp = interpolate(open_cohort(demo.cohort_path()), feature=feature)
        loaded = load_decoder(demo.decoder_path())
        decoding, null = _Clock(), _Clock()
        dec = Decoder(fn=decoding.wrap(loaded.fn), identity=loaded.identity)
        one = _old_null_trajectory(interp) if old_null else interp.null_trajectory
        many = (
            (lambda rows, scheme: np.stack([one(idx, scheme) for idx in rows]))
            if old_null
            else interp.null_trajectories
        )
        # the producer calls one of them: per permutation or per batch
        object.__setattr__(interp, "null_trajectory", null.wrap(one))
        object.__setattr__(interp, "null_trajectories", null.wrap(many))
        object.__setattr__(interp, "flip_trajectories", null.wrap(interp.flip_trajectories))
        result = sequence(interp, dec, n_perm=n_perm, seed=0, batch_size=16, null=null_kind)
        result.save(Path(tmp) / "out.nc")
        total = time.perf_counter() - t0
    return {
        "null": "old (QR per permutation)" if old_null else null_kind,
        "n_perm": n_perm,
        "total_s": total,
        "decoding_s": decoding.seconds,
        "null_trajectories_s": null.seconds,
        "other_s": total - decoding.seconds - null.seconds,
        "decoding_share": decoding.seconds / total,
        "scheme": result.attrs["permutation_scheme"],
    }


def _print(r: dict) -> None:
    print(
        f"null {r['null']:<26} B={r['n_perm']:<5} total {r['total_s']:7.2f} s | decoding {r['decoding_s']:7.2f} s"
        f" | null trajectories {r['null_trajectories_s']:6.2f} s | other statistics {r['other_s']:6.2f} s"
        f" | decoding share {100 * r['decoding_share']:5.1f}%  ({r['scheme']})",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="B = 20 (a smoke run of a few seconds)")
    parser.add_argument("--perm", type=int, default=None, help="permutations B (default 1,000; 20 with --quick)")
    parser.add_argument("--old-null", action="store_true", help="the patient-label null as before (QR per permutation)")
    parser.add_argument("--compare", action="store_true", help="new and old permutation null, alternating")
    parser.add_argument("--null", default="sign-flip", choices=["sign-flip", "permutation"], help="the null")
    parser.add_argument("--compare-nulls", action="store_true", help="sign-flip and permutation nulls, alternating")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of --compare")
    parser.add_argument("--runs", type=int, default=1, help="jobs in one process (without --compare)")
    parser.add_argument(
        "--no-keep-freed",
        action="store_true",
        help="leave glibc malloc at its defaults (the CLI calls keep_freed_memory())",
    )
    args = parser.parse_args()
    n_perm = args.perm if args.perm is not None else (20 if args.quick else 1000)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"demo main job (bnpp, gam, {args.null}, maxt), {os.cpu_count()} CPUs, load {load:.2f}", flush=True)
    from seegaan._internal.runtime import command_threads
    from seegaan.model.allocator import keep_freed_memory

    # the CLI's settings: keep_freed_memory() before decoding a checkpoint, then --threads 1 for all libraries
    kept = False if args.no_keep_freed else keep_freed_memory()
    print(f"keep_freed_memory: {'on' if kept else 'off'}", flush=True)
    if args.compare_nulls:
        modes = [(False, "sign-flip"), (False, "permutation")] * args.repeat
    elif args.compare:
        modes = [(False, "permutation"), (True, "permutation")] * args.repeat
    else:
        modes = [(args.old_null, "permutation" if args.old_null else args.null)] * args.runs
    with command_threads(1):
        results = [run(n_perm, old_null=old, null_kind=kind) for old, kind in modes]
    for r in results:
        _print(r)
    if args.compare or args.compare_nulls:
        labels = ("sign-flip", "permutation") if args.compare_nulls else ("permutation", "old (QR per permutation)")
        for label in labels:
            share = np.median([r["decoding_share"] for r in results if r["null"] == label])
            print(f"median decoding share, null {label}: {100 * share:.1f}%")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load at the end {load:.2f}")


if __name__ == "__main__":
    main()
