"""Wall time and peak memory of a sequence's statistics as functions of n, D, K, B and the image size.

The decoder costs (almost) nothing: it returns slices of a precomputed bank of random images (a gather
picked by the latents), so what is measured is the rest of a sequence: the permutation plan, the null
trajectories, the streaming kernels (counts, sums, the max-T maxima) and the bookkeeping. Every point runs
in its own subprocess (``resource.getrusage`` peak RSS, and the RSS before the sequence, after the kernels
were compiled on a tiny run). The ``dask`` points compare one process with a Dask ``LocalCluster`` of 2
workers (1 thread each) on the same job.

``--whole`` measures the whole path instead: real generators decode (the bundled demo, 64x64, latent 64;
and a randomly initialised generator of the paper's configuration, 256x256, latent 512 -- the weights do
not change the cost), every decoder call timed, so each point reports the decoding share; B varies, and
one process is compared with 2 Dask workers.

    python benchmarks/bench_scaling.py            # the README's table and plot (~5-10 min)
    python benchmarks/bench_scaling.py --whole    # real generators (~5 min on 2 cores)
    python benchmarks/bench_scaling.py --quick    # a few tiny points (seconds)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
BASE = dict(n=2000, D=128, K=5, B=200, size=64, workers=0)
BANK = 64


def __getattr__(name: str):
    """``bench_scaling:bank_<size>``: the bank decoder for ``size`` x ``size`` images; ``bench_scaling:paper``:
    a randomly initialised paper-config generator (each made once per process)."""
    if name.startswith("bank_"):
        dec = _bank(int(name[5:]))
    elif name == "paper":
        dec = _paper()
    else:
        raise AttributeError(name)
    globals()[name] = dec
    return dec


def _paper():
    """The paper's generator (256x256, latent 512) with random weights (seed 0), as a checkpoint decoder."""
    import torch

    from seegaan.model.config import ModelConfig
    from seegaan.model.inference import CheckpointDecoder
    from seegaan.model.networks import Generator

    torch.manual_seed(0)
    cfg = ModelConfig(image_size=256)
    return CheckpointDecoder(
        Generator(cfg), cfg, identity="paper config, random weights (seed 0)", device=torch.device("cpu")
    )


def _decoder_spec(point: dict) -> str:
    return {"free": f"bench_scaling:bank_{point['size']}", "paper": "bench_scaling:paper"}.get(
        point["decoder"]
    ) or _demo_spec()


def _demo_spec() -> str:
    from seegaan import demo

    return str(demo.decoder_path())


def _bank(size: int):
    bank = np.random.default_rng(size).standard_normal((BANK, size, size)).astype(np.float32)

    def decode(w: np.ndarray) -> np.ndarray:
        pick = (np.abs(w[:, 0]) * 1e4).astype(np.int64) % BANK
        return bank[pick]

    decode.batch_invariant = True
    return decode


def _cohort(n: int, D: int):
    import pandas as pd

    import seegaan

    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        {
            "image_id": [f"i{i}" for i in range(n)],
            "patient_id": [f"p{i}" for i in range(n)],
            "age": rng.uniform(20, 90, n),
        }
    )
    return seegaan.create_cohort(rng.standard_normal((n, D)), table, model="bench", image_size=8)


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_point(point: dict) -> dict:
    """One measurement in this process: the sequence of ``point`` (statistic ``difference``, max-T)."""
    import seegaan
    from seegaan.decoder import Decoder, load_decoder
    from seegaan.stats import SeegaanWarning

    sys.path.insert(0, str(HERE))
    point = {"decoder": "free", **point}
    spec = _decoder_spec(point)
    decoding = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SeegaanWarning)
        if point["decoder"] != "free":
            from seegaan.model import keep_freed_memory

            keep_freed_memory()  # as the CLI does before decoding a checkpoint
        tiny = seegaan.interpolate(_cohort(20, point["D"]), feature="age", method="linear", steps=3)
        seegaan.sequence(tiny, spec, n_perm=5, statistic="difference")  # compile the kernels
        interp = seegaan.interpolate(_cohort(point["n"], point["D"]), feature="age", method="linear", steps=point["K"])
        if point["decoder"] != "free" and not point["workers"]:
            from bench_main_job import _Clock

            loaded, decoding = load_decoder(spec), _Clock()
            spec = Decoder(fn=decoding.wrap(loaded.fn), identity=loaded.identity)
        client = cluster = None
        if point["workers"]:
            import distributed

            cluster = distributed.LocalCluster(
                n_workers=point["workers"], threads_per_worker=1, processes=True, dashboard_address=None
            )
            client = distributed.Client(cluster, set_as_default=False)
            # warm every worker (one task of 16 permutations each): decoder loaded, kernels compiled
            seegaan.sequence(
                tiny,
                spec,
                n_perm=16 * point["workers"],
                statistic="difference",
                correction="maxt",
                batch_size=16,
                client=client,
            )
        rss0 = _rss_mb()
        start = time.perf_counter()
        res = seegaan.sequence(
            interp, spec, n_perm=point["B"], statistic="difference", correction="maxt", batch_size=16, client=client
        )
        wall = time.perf_counter() - start
        if client is not None:
            client.close()
            cluster.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {**point, "wall_s": wall, "rss_before_mb": rss0, "peak_mb": peak, "significant": int(res.significant.sum())}
    if decoding is not None:
        out["decoding_s"] = decoding.seconds
    return out


def whole_points(quick: bool) -> list[tuple[str, dict]]:
    """Real generators: the demo (B 250 / 500 / 1,000, K = 8) and the paper config (B 5 / 10, K = 3; 1 process
    vs 2 workers at B = 32)."""
    demo = dict(n=2000, D=64, K=8, size=64, workers=0, decoder="demo")
    paper = dict(n=2000, D=512, K=3, size=256, workers=0, decoder="paper")
    if quick:
        return [("demo", {**demo, "B": 20, "K": 3}), ("demo-dask", {**demo, "B": 20, "K": 3, "workers": 2})]
    return (
        [("demo", {**demo, "B": b}) for b in (250, 500, 1000)]
        + [("demo-dask", {**demo, "B": 1000, "workers": w}) for w in (0, 2)]
        + [("paper", {**paper, "B": b}) for b in (5, 10)]
        # B = 32: two tasks of 16 permutations (a task holds whole blocks of 16), one per worker
        + [("paper-dask", {**paper, "B": 32, "workers": w}) for w in (0, 2)]
    )


def points(quick: bool) -> list[tuple[str, dict]]:
    if quick:
        base = dict(n=200, D=16, K=3, B=20, size=32, workers=0)
        return [("n", {**base, "n": n}) for n in (200, 400)] + [("B", {**base, "B": 40})]
    out = []
    for factor, values in (
        ("n", (1000, 10_000, 100_000)),
        ("D", (64, 256, 512)),
        ("K", (3, 10, 20)),
        ("B", (50, 800)),
        ("size", (128, 256)),
    ):
        out += [(factor, {**BASE, factor: v}) for v in values]
    out.insert(0, ("base", dict(BASE)))
    dask = dict(BASE, n=2000, size=128, B=400)
    out += [("dask", {**dask, "workers": 0}), ("dask", {**dask, "workers": 2})]
    return out


def measure(point: dict) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, __file__, "--point", json.dumps(point)], env=env, capture_output=True, text=True, timeout=900
    )
    if done.returncode != 0:
        raise SystemExit(f"point {point} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def plot(rows: list[dict], path: Path) -> None:
    from matplotlib.figure import Figure

    factors = [
        ("n", "images n"),
        ("D", "latent size D"),
        ("K", "steps K"),
        ("B", "permutations B"),
        ("size", "image side (pixels)"),
    ]
    fig = Figure(figsize=(15, 3.4), layout="constrained")
    axes = fig.subplots(1, len(factors))
    for ax, (factor, label) in zip(axes, factors):
        pts = sorted({r[factor]: r for r in rows if r["factor"] in (factor, "base")}.values(), key=lambda r: r[factor])
        x = np.array([p[factor] for p in pts], float)
        t = np.array([p["wall_s"] for p in pts])
        ax.loglog(x, t, "o-", label="wall time (s)")
        ax.loglog(x, t[0] * x / x[0], ":", color="grey", label="linear from the first point")
        mem = ax.twinx()
        mem.plot(x, [p["peak_mb"] - p["rss_before_mb"] for p in pts], "s--", color="C1", label="peak - start RSS (MiB)")
        mem.set_ylabel("peak RSS above start (MiB)", color="C1")
        ax.set_xlabel(label)
        ax.set_ylabel("wall time (s)")
    axes[0].legend(loc="upper left", fontsize=7)
    fig.suptitle("seegaan sequence, statistics alone (max-T, difference; a decoder that costs nothing)")
    fig.savefig(path, dpi=110)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a few tiny points (for the tests)")
    ap.add_argument(
        "--whole",
        action="store_true",
        help="the whole path with real generators (demo, paper config) instead of a free decoder",
    )
    ap.add_argument(
        "--only",
        nargs="+",
        metavar="FACTOR",
        help="measure only these factors (n D K B size base dask; with --whole: demo demo-dask "
        "paper paper-dask) and update the results file",
    )
    ap.add_argument("--point", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.point:
        print(json.dumps(run_point(json.loads(args.point))))
        return
    results = RESULTS / ("scaling_whole.json" if args.whole else "scaling.json")
    rows = []
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    print(
        f"{'factor':>10} {'n':>7} {'D':>4} {'K':>3} {'B':>4} {'size':>4} {'workers':>7} {'wall s':>8} "
        f"{'us/perm/px':>10} {'start MiB':>9} {'peak MiB':>9} {'decoding':>8}"
    )
    kept = []
    if args.only and results.exists():
        kept = [r for r in json.loads(results.read_text()) if r["factor"] not in args.only]
    for factor, point in (whole_points if args.whole else points)(args.quick):
        if args.only and factor not in args.only:
            continue
        r = {"factor": factor, **measure(point)}
        rows.append(r)
        per = 1e6 * r["wall_s"] / (r["B"] * r["K"] * r["size"] ** 2)
        share = f"{100 * r['decoding_s'] / r['wall_s']:7.1f}%" if "decoding_s" in r else f"{'':>8}"
        print(
            f"{factor:>10} {r['n']:>7} {r['D']:>4} {r['K']:>3} {r['B']:>4} {r['size']:>4} {r['workers']:>7} "
            f"{r['wall_s']:>8.3f} {per:>10.4f} {r['rss_before_mb']:>9.0f} {r['peak_mb']:>9.0f} {share}",
            flush=True,
        )
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        rows = kept + rows
        results.write_text(json.dumps(rows, indent=1))
        print(f"wrote {results}")
        if not args.whole:
            plot(rows, RESULTS / "scaling.png")
            print(f"wrote {RESULTS / 'scaling.png'}")


if __name__ == "__main__":
    main()
