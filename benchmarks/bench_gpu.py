"""Issue #16 item 4 on a lent GPU: paper-generator decoding vs the card's conv rate, and a 1,000-permutation sequence.

One prepared call (about 7 minutes on an H200; every part time-limited, one JSON written as it goes):

    python benchmarks/bench_gpu.py --json OUT.json            # on the GPU (--budget seconds, default 400)
    python benchmarks/bench_gpu.py --dry --json /tmp/d.json   # CPU rehearsal, tiny sizes (< 1 min)

What it measures, with randomly initialised weights (the cost does not depend on them):

1. **Decoding vs the reference 3x3 convolution.** The reference is ``bench_model.py``'s: one 512 -> 512 3x3
   conv at 32x32, batch 4. Its rate is measured in alternation with every decode (best of ``repeat``
   samples each; a sample loops a call until it lasts >= 50 ms on a GPU, so a 0.1 ms conv is not timed by
   its launch and synchronisation), in the same precision, and every decode is reported as a percentage
   of it (``pct_of_conv``; the target of issue #16 is >= 90%, 73% was measured on an H200 with
   ``bench_model.py``, whose conv was timed one call at a time: ``conv_single_call_tflops`` repeats that
   way for comparison). Paper generator (``ModelConfig(image_size=256)``, 56.3 GFLOP/image) at batch 128
   and 32, in strict fp32 (``seegaan._internal.runtime.strict_fp32``: what ``seegaan.sequence`` decodes in) and in
   TF32, variants:

   * ``base``: channels-last, ``cudnn.benchmark=True``, the in-place inference path (as ``bench_model``);
   * ``cudnn_benchmark_off``: the library's default (what a sequence gets);
   * ``nchw``: contiguous layout;
   * ``cuda_graph``: the base forward captured once in a CUDA graph and replayed (no launch overhead);
   * ``checkpoint_decoder``: :class:`seegaan.model.inference.CheckpointDecoder` itself, NumPy latents in
     and images out (chunks of 32, each copied back to the host), ``cudnn.benchmark`` off;
   * ``bf16_autocast`` (batch 128, against the bf16 conv; never used for significance maps) if time is left;
   * ``compiled``: ``torch.compile(generator, fullgraph=True, dynamic=False)`` run with gradients enabled
     (the functional forward, whose elementwise ops inductor can fuse; nothing requires grad), in a
     subprocess killed at its time limit, last, with the time that is left.

2. **End-to-end sequence** (a subprocess, killed at its time limit): a paper-config checkpoint written with
   ``seegaan.model.checkpoint.save_checkpoint`` (random weights), a synthetic cohort of ``n`` latents
   (``seegaan.create_cohort``: one image per patient, numeric feature ``age``), ``seegaan.interpolate``
   (auto: GAM, K = 8 steps) and ``seegaan.sequence`` with B = 1,000 (max-T, library defaults, decoder
   loaded with ``load_decoder(path, device="cuda")`` and wrapped by a timer, which is what
   ``seegaan.sequence(interp, path, device="cuda")`` does without the timer). The
   decoder and the null trajectories are wrapped and timed; reported: wall time, decoding seconds and
   share, frames decoded, images/s. The Numba kernels are compiled/loaded first by a tiny sequence (its
   time is ``kernel_warmup_s``). A second run, if time is left, changes only ``null_cache_mb`` so that the
   null maps are kept (one decoding pass) where the default decodes them twice, or the reverse. Last, if
   30 s are left, the users' spelling ``seegaan.sequence(interp, "model.pt", device="cuda")`` (20
   permutations): its ``precision`` attr, its observed differences against a CPU decode of the same
   checkpoint (``max_abs_diff_vs_cpu``), and the one-line refusal of a GPU index the machine lacks.

``--dry`` (implies ``--device cpu``) runs every part with tiny sizes (32x32 paper config, B = 20) to
rehearse the call; the compile subprocess then runs into its short limit and is killed, as a rehearsal of
that guard.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# budget: seconds for everything; decode_share: the decoding part's share of it (it needs about 60 s on an
# H200); min_left: a measurement starts only with this many seconds left in its part; the sequence gets at
# most sequence_timeout and leaves compile_min for the compiled variant, which needs that much to start
GPU = dict(
    image_size=256,
    batches=(128, 32),
    n=2000,
    steps=8,
    perm=1000,
    repeat=5,
    min_sample_s=0.05,
    ref_conv=dict(batch=4, channels=512, size=32),
    budget=400.0,
    decode_share=0.4,
    min_left=15.0,
    sequence_timeout=220.0,
    sequence_min=30.0,
    compile_timeout=200.0,
    compile_min=60.0,
)
DRY = dict(
    image_size=32,
    batches=(4, 2),
    n=120,
    steps=3,
    perm=20,
    repeat=2,
    min_sample_s=0.0,
    ref_conv=dict(batch=4, channels=128, size=16),
    budget=55.0,
    decode_share=0.4,
    min_left=1.0,
    sequence_timeout=40.0,
    sequence_min=10.0,
    compile_timeout=8.0,
    compile_min=5.0,
)


# ---------------------------------------------------------------------------------------------------
# making the package importable without an install (the GPU machine runs the source tree)
# ---------------------------------------------------------------------------------------------------


def _importable() -> None:
    """Put the repository on sys.path, and link ``kernels/`` as ``seegaan_kernels`` when not installed;
    children inherit it through PYTHONPATH."""
    import importlib.util

    extra = []
    if importlib.util.find_spec("seegaan") is None:
        extra.append(str(ROOT))
    if importlib.util.find_spec("seegaan_kernels") is None:
        import atexit
        import shutil

        site = Path(tempfile.mkdtemp(prefix="seegaan_site_"))
        atexit.register(shutil.rmtree, site, True)
        (site / "seegaan_kernels").symlink_to(ROOT / "kernels", target_is_directory=True)
        extra.append(str(site))
    if extra:
        sys.path[:0] = extra
        os.environ["PYTHONPATH"] = os.pathsep.join(extra + [p for p in [os.environ.get("PYTHONPATH")] if p])


# ---------------------------------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------------------------------


class Deadline:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def _sync(dev) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _sample(fn, calls: int, dev) -> float:
    """Seconds per call of ``fn`` over ``calls`` back-to-back calls (the device waited for)."""
    _sync(dev)
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    _sync(dev)
    return (time.perf_counter() - t0) / calls


def _calls_per_sample(fn, dev, min_sample_s: float) -> int:
    fn()  # warm-up: cuDNN autotuning, cached weights, lazy CUDA modules
    one = _sample(fn, 1, dev)
    return max(1, math.ceil(min_sample_s / one)) if min_sample_s else 1


def paired(decode, conv, dev, *, repeat: int, min_sample_s: float) -> tuple[list[float], list[float]]:
    """Seconds per call of ``decode`` and of ``conv``, sampled in alternation (a load change hits both)."""
    kd = _calls_per_sample(decode, dev, min_sample_s)
    kc = _calls_per_sample(conv, dev, min_sample_s)
    d, c = [], []
    for _ in range(repeat):
        c.append(_sample(conv, kc, dev))
        d.append(_sample(decode, kd, dev))
    return d, c


def _median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else 0.5 * (xs[len(xs) // 2 - 1] + xs[len(xs) // 2])


# ---------------------------------------------------------------------------------------------------
# precision, reference convolution, generators
# ---------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def precision(name: str, dev):
    """``strict_fp32``, ``tf32`` or ``bf16_autocast``; yields ``precision_record`` (every flag restored after)."""
    import torch

    from seegaan._internal.runtime import precision_record, strict_fp32

    with strict_fp32(dev) as record:
        if name == "strict_fp32":
            yield record
            return
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.set_float32_matmul_precision("high")
        if name == "tf32":
            yield precision_record(dev)
            return
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            yield f"bf16 autocast on {dev}"


@contextlib.contextmanager
def cudnn_benchmark(enabled: bool):
    import torch

    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def reference_conv(dev, ref: dict, batch: int | None = None):
    """(run, FLOP per call) of the reference 3x3 conv (``ref``: bench_model.py's 512 -> 512 at 32x32, batch 4;
    smaller in --dry), channels-last as the decoder."""
    import torch

    c, s, batch = ref["channels"], ref["size"], batch or ref["batch"]
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(batch, c, s, s, generator=gen).to(dev).contiguous(memory_format=torch.channels_last)
    w = torch.randn(c, c, 3, 3, generator=gen).to(dev).contiguous(memory_format=torch.channels_last)

    def run():
        with torch.inference_mode():
            torch.nn.functional.conv2d(x, w, padding=1)

    return run, 2.0 * batch * c * c * 9 * s * s


def paper_generator(cfg, dev, *, channels_last: bool = True):
    import torch

    from seegaan.model.networks import Generator

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        gen = Generator(cfg)
    return gen.to(dev).eval().requires_grad_(False).use_channels_last(channels_last)


def latents(cfg, batch: int, dev):
    import torch

    return torch.randn(batch, cfg.latent_size, generator=torch.Generator().manual_seed(2)).to(dev)


def eager_runner(gen, w):
    import torch

    def run():
        with torch.inference_mode():
            gen(w, noise_mode="const")

    return run


def graphed_runner(gen, w):
    """The inference forward captured once in a CUDA graph (warmed up on a side stream first)."""
    import torch

    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream), torch.inference_mode():
        for _ in range(2):
            gen(w, noise_mode="const")
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.inference_mode(), torch.cuda.graph(graph):
        gen(w, noise_mode="const")
    return graph.replay, graph


def decoder_runner(gen, cfg, batch: int, dev):
    """The package's CheckpointDecoder around ``gen``: NumPy in, NumPy out, as a sequence calls it."""
    import numpy as np

    from seegaan.model.inference import CheckpointDecoder

    dec = CheckpointDecoder(gen, cfg, identity="random weights", device=dev)
    w = np.random.default_rng(3).standard_normal((batch, cfg.latent_size)).astype(np.float32)
    return lambda: dec(w), dec.batch_size


# ---------------------------------------------------------------------------------------------------
# part 1: decoding
# ---------------------------------------------------------------------------------------------------


def measure(
    res: dict,
    *,
    label: str,
    prec: str,
    batch: int,
    variant: str,
    decode,
    conv,
    conv_flops: float,
    flops_per_image: float,
    dev,
    sizes: dict,
    extra: dict | None = None,
) -> dict:
    d, c = paired(decode, conv, dev, repeat=sizes["repeat"], min_sample_s=sizes["min_sample_s"])
    img_s, conv_tf = batch / min(d), conv_flops / min(c) / 1e12
    dec_tf = img_s * flops_per_image / 1e12
    row = {
        "precision": prec,
        "batch": batch,
        "variant": variant,
        "images_per_s": img_s,
        "images_per_s_median": batch / _median(d),
        "decode_tflops": dec_tf,
        "conv_tflops": conv_tf,
        "conv_tflops_median": conv_flops / _median(c) / 1e12,
        "pct_of_conv": 100.0 * dec_tf / conv_tf,
        **(extra or {}),
    }
    res.setdefault("decode", []).append(row)
    print(
        f"{label:<42} {img_s:9.1f} images/s = {dec_tf:8.3f} TFLOP/s = {row['pct_of_conv']:5.1f}% of the conv "
        f"({conv_tf:.3f} TFLOP/s)",
        flush=True,
    )
    return row


def _attempt(res: dict, label: str, deadline: Deadline, sizes: dict, fn, dev) -> None:
    """Run one measurement if its part has time left; a failure is reported in ``skipped`` and the rest runs."""
    import torch

    if deadline.left() < sizes["min_left"]:
        res["skipped"].append(f"{label}: out of time")
        return
    try:
        fn()
    except Exception as exc:  # noqa: BLE001
        msg = str(exc).splitlines()[0][:200] if str(exc) else ""
        res["skipped"].append(f"{label}: failed: {type(exc).__name__}: {msg}")
        print(f"{label}: failed ({type(exc).__name__}: {msg})", flush=True)
    finally:
        if dev.type == "cuda":
            torch.cuda.empty_cache()


def decode_part(res: dict, cfg, dev, sizes: dict, deadline: Deadline, save) -> None:
    """Every (precision, batch, variant) against the reference conv; the CUDA graphs last (a capture that
    fails could leave the CUDA context unusable; the sequence and compile parts run in fresh processes)."""
    from seegaan.model.networks import conv_flops_per_image

    flops = conv_flops_per_image(cfg)
    res["paper_generator_gflop_per_image"] = flops / 1e9
    gens = {"channels_last": paper_generator(cfg, dev), "nchw": paper_generator(cfg, dev, channels_last=False)}
    ref = sizes["ref_conv"]
    conv, conv_flops = reference_conv(dev, ref)
    shape = (
        f"{ref['channels']}->{ref['channels']} 3x3 at {ref['size']}x{ref['size']}, batch {ref['batch']}, channels-last"
    )
    info = res["conv_reference"] = {"shape": shape, "gflop_per_call": conv_flops / 1e9}
    ws = {batch: latents(cfg, batch, dev) for batch in sizes["batches"]}
    largest = max(sizes["batches"])

    def conv_rates(prec):
        """The reference conv timed one call at a time (as bench_model.py did), and the same conv at batch 32."""
        with precision(prec, dev) as record, cudnn_benchmark(True):
            info[f"{prec}_precision"] = record
            single = [_sample(conv, 1, dev) for _ in range(2 * sizes["repeat"])]
            info[f"{prec}_single_call_tflops"] = conv_flops / min(single) / 1e12
            big, big_flops = reference_conv(dev, ref, batch=32)
            _, cb = paired(big, big, dev, repeat=sizes["repeat"], min_sample_s=sizes["min_sample_s"])
            info[f"{prec}_batch32_tflops"] = big_flops / min(cb) / 1e12

    def eager(prec, batch, variant, bench, layout):
        with precision(prec, dev), cudnn_benchmark(bench):
            measure(
                res,
                label=f"{prec} batch {batch} {variant}",
                prec=prec,
                batch=batch,
                variant=variant,
                decode=eager_runner(gens[layout], ws[batch]),
                conv=conv,
                conv_flops=conv_flops,
                flops_per_image=flops,
                dev=dev,
                sizes=sizes,
            )

    def decoder(prec):
        with precision(prec, dev), cudnn_benchmark(False):
            run, chunk = decoder_runner(gens["channels_last"], cfg, largest, dev)
            measure(
                res,
                label=f"{prec} batch {largest} checkpoint_decoder",
                prec=prec,
                batch=largest,
                variant="checkpoint_decoder",
                decode=run,
                conv=conv,
                conv_flops=conv_flops,
                flops_per_image=flops,
                dev=dev,
                sizes=sizes,
                extra={"decoder_chunk": chunk},
            )

    def graphed(prec, batch):
        with precision(prec, dev), cudnn_benchmark(True):
            run, graph = graphed_runner(gens["channels_last"], ws[batch])
            try:
                measure(
                    res,
                    label=f"{prec} batch {batch} cuda_graph",
                    prec=prec,
                    batch=batch,
                    variant="cuda_graph",
                    decode=run,
                    conv=conv,
                    conv_flops=conv_flops,
                    flops_per_image=flops,
                    dev=dev,
                    sizes=sizes,
                )
            finally:
                del run, graph

    for prec in ("strict_fp32", "tf32"):
        _attempt(res, f"{prec} reference conv", deadline, sizes, lambda: conv_rates(prec), dev)
        for batch in sizes["batches"]:
            for variant, bench, layout in (
                ("base", True, "channels_last"),
                ("cudnn_benchmark_off", False, "channels_last"),
                ("nchw", True, "nchw"),
            ):
                _attempt(
                    res,
                    f"{prec} batch {batch} {variant}",
                    deadline,
                    sizes,
                    lambda: eager(prec, batch, variant, bench, layout),
                    dev,
                )
                save()
        _attempt(res, f"{prec} batch {largest} checkpoint_decoder", deadline, sizes, lambda: decoder(prec), dev)
        save()
    for prec in ("strict_fp32", "tf32"):
        for batch in sizes["batches"]:
            if dev.type != "cuda":
                res["skipped"].append(f"{prec} batch {batch} cuda_graph: CUDA only")
                continue
            _attempt(res, f"{prec} batch {batch} cuda_graph", deadline, sizes, lambda: graphed(prec, batch), dev)
            save()


def bf16_part(res: dict, cfg, dev, sizes: dict, deadline: Deadline, save) -> None:
    from seegaan.model.networks import conv_flops_per_image

    batch = max(sizes["batches"])

    def run():
        gen, w = paper_generator(cfg, dev), latents(cfg, batch, dev)
        conv, conv_flops = reference_conv(dev, sizes["ref_conv"])
        with precision("bf16_autocast", dev), cudnn_benchmark(True):
            measure(
                res,
                label=f"bf16_autocast batch {batch} base",
                prec="bf16_autocast",
                batch=batch,
                variant="base",
                decode=eager_runner(gen, w),
                conv=conv,
                conv_flops=conv_flops,
                flops_per_image=conv_flops_per_image(cfg),
                dev=dev,
                sizes=sizes,
            )

    _attempt(res, f"bf16_autocast batch {batch}", deadline, sizes, run, dev)
    save()


def compile_child(args, sizes: dict, out: Path) -> None:
    """In a subprocess: the compiled generator, TF32 then strict fp32, batch 128 then 32, while time lasts."""
    import torch

    from seegaan.model.config import ModelConfig
    from seegaan.model.networks import conv_flops_per_image

    deadline = Deadline(args.child_seconds)
    dev = torch.device(args.device)
    cfg = ModelConfig(image_size=sizes["image_size"])
    res: dict = {"rows": []}

    def save():
        _write_json(out, res)

    gen = paper_generator(cfg, dev)
    compiled = torch.compile(gen, fullgraph=True, dynamic=False)
    conv, conv_flops = reference_conv(dev, sizes["ref_conv"])
    for batch in sorted(sizes["batches"], reverse=True):
        w = latents(cfg, batch, dev)
        for prec in ("tf32", "strict_fp32"):
            if deadline.left() < sizes["min_left"]:
                return
            with precision(prec, dev), cudnn_benchmark(True):
                with torch.inference_mode():
                    reference = gen(w, noise_mode="const")
                t0 = time.perf_counter()
                y = compiled(w, noise_mode="const")  # compiles (again, for a new batch size or precision)
                _sync(dev)
                first = time.perf_counter() - t0
                diff = float((y.detach() - reference).abs().max())
                del y, reference

                def run():
                    compiled(w, noise_mode="const")

                row = measure(
                    {},
                    label=f"{prec} batch {batch} compiled",
                    prec=prec,
                    batch=batch,
                    variant="compiled",
                    decode=run,
                    conv=conv,
                    conv_flops=conv_flops,
                    flops_per_image=conv_flops_per_image(cfg),
                    dev=dev,
                    sizes=sizes,
                    extra={"first_call_s": first, "max_abs_diff_vs_eager": diff},
                )
                res["rows"].append(row)
                save()


# ---------------------------------------------------------------------------------------------------
# part 2: the end-to-end sequence
# ---------------------------------------------------------------------------------------------------


class _Timed:
    """Wall time, calls and rows of the wrapped callable; other attributes pass through (batch_invariant,
    device, autocast_bf16 of a checkpoint decoder)."""

    def __init__(self, fn):
        self.fn, self.seconds, self.calls, self.rows = fn, 0.0, 0, 0

    def __call__(self, x, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return self.fn(x, *args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t0
            self.calls += 1
            self.rows += len(x)

    def __getattr__(self, name):
        return getattr(self.fn, name)


def _cohort(n: int, D: int, *, model: str, image_size: int):
    import numpy as np
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
    return seegaan.create_cohort(
        rng.standard_normal((n, D)).astype(np.float32), table, model=model, image_size=image_size
    )


def _warm_kernels() -> float:
    """A tiny sequence with a free decoder: Numba compiles (first run after an install) or loads its kernels."""
    import numpy as np

    import seegaan

    rng = np.random.default_rng(4)

    def tiny(w):
        return rng.standard_normal((len(w), 16, 16)).astype(np.float32)

    tiny.batch_invariant = True
    t0 = time.perf_counter()
    interp = seegaan.interpolate(_cohort(40, 8, model="", image_size=16), feature="age", steps=3)
    seegaan.sequence(interp, tiny, n_perm=20, seed=0)
    return time.perf_counter() - t0


def sequence_child(args, sizes: dict, out: Path) -> None:
    import torch

    import seegaan
    from seegaan._internal.runtime import thread_record
    from seegaan.decoder import load_decoder
    from seegaan.model.allocator import keep_freed_memory
    from seegaan.model.checkpoint import networks_state, save_checkpoint
    from seegaan.model.config import ModelConfig
    from seegaan.model.networks import build_networks

    deadline = Deadline(args.child_seconds)
    dev = torch.device(args.device)
    size, K, B, n = sizes["image_size"], sizes["steps"], args.perm or sizes["perm"], sizes["n"]
    res: dict = {"image_size": size, "steps": K, "n_perm": B, "n_images": n, "runs": []}

    def save():
        _write_json(out, res)

    res["keep_freed_memory"] = keep_freed_memory()  # as the seegaan commands do before decoding a checkpoint
    with tempfile.TemporaryDirectory() as tmp:
        cfg = ModelConfig(image_size=size)
        t0 = time.perf_counter()
        path = save_checkpoint(Path(tmp) / "paper.pt", cfg, networks_state(build_networks(cfg), None))
        res["checkpoint_write_s"] = time.perf_counter() - t0
        res["checkpoint_mb"] = path.stat().st_size / 1e6
        res["kernel_warmup_s"] = _warm_kernels()
        save()
        t0 = time.perf_counter()
        loaded = load_decoder(path, device=dev)  # as sequence(interp, path, device=dev) loads it
        res["decoder_load_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        interp = seegaan.interpolate(
            _cohort(n, cfg.latent_size, model=loaded.identity, image_size=size), feature="age", steps=K
        )
        res["interpolate_s"] = time.perf_counter() - t0
        res["threads"] = thread_record()
        null_mb = B * K * size * size * 4 / 2**20
        default_kept = null_mb <= 1024
        plans = [
            ("library defaults", {}),
            (
                "null maps decoded again" if default_kept else "null maps kept",
                {"null_cache_mb": 0 if default_kept else math.ceil(null_mb) + 1},
            ),
        ]
        for name, kw in plans:
            if res["runs"] and deadline.left() < (2.2 if default_kept else 1.1) * res["runs"][0]["wall_s"] + 5:
                res["skipped"] = f"{name}: out of time"
                break
            try:
                row = _timed_sequence(interp, loaded, dev, n_perm=B, **kw)
            except Exception as exc:  # noqa: BLE001 - e.g. a memory check: reported, the next run is tried
                res["runs"].append({"run": name, "error": f"{type(exc).__name__}: {str(exc)[:300]}"})
                print(f"sequence ({name}) failed: {res['runs'][-1]['error']}", flush=True)
                save()
                continue
            row = {"run": name, "null_cache_mb": kw.get("null_cache_mb", 1024), "null_maps_mb": null_mb, **row}
            res["runs"].append(row)
            print(
                f"sequence ({name}): B={B} {size}x{size} K={K} n={n}: {row['wall_s']:.2f} s, decoding "
                f"{row['decoding_s']:.2f} s ({100 * row['decoding_share']:.1f}%), {row['frames_decoded']} frames = "
                f"{row['decoding_images_per_s']:.1f} images/s decoding, null trajectories "
                f"{row['null_trajectories_s']:.2f} s",
                flush=True,
            )
            save()
        if deadline.left() > 30:
            res["user_path"] = _user_path(interp, path, dev)
            print(f"user path: {res['user_path']}", flush=True)
            save()
        else:
            res["skipped_user_path"] = "out of time"


def _user_path(interp, path, dev) -> dict:
    """The spelling users write, ``seegaan.sequence(interp, "model.pt", device=...)`` (20 permutations): its
    ``precision`` attr, its observed differences against the same checkpoint decoded on the CPU (strict fp32
    on both: float rounding only), and the one-line refusal of a GPU index the machine does not have."""
    import numpy as np
    import torch

    import seegaan
    from seegaan._internal.errors import SeegaanError
    from seegaan.stats import SeegaanWarning

    device = "cuda" if dev.type == "cuda" else "cpu"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SeegaanWarning)
        t0 = time.perf_counter()
        here = seegaan.sequence(interp, str(path), n_perm=20, seed=0, device=device)
        wall = time.perf_counter() - t0
        cpu = seegaan.sequence(interp, str(path), n_perm=0, device="cpu")
    out = {
        "device": device,
        "wall_s": wall,
        "precision": here.attrs["precision"],
        "max_abs_diff_vs_cpu": float(np.abs(here.difference - cpu.difference).max()),
        "max_abs_difference": float(np.abs(cpu.difference).max()),
    }
    absent = f"cuda:{torch.cuda.device_count() if torch.cuda.is_available() else 0}"
    try:
        seegaan.sequence(interp, str(path), n_perm=0, device=absent)
        out["absent_gpu_error"] = "not refused"
    except SeegaanError as exc:
        out["absent_gpu_error"] = str(exc)
    return out


def _timed_sequence(interp, loaded, dev, **kwargs) -> dict:
    """``seegaan.sequence`` with its decoder and null trajectories timed (the interpolation left as it was)."""
    import seegaan
    from seegaan.decoder import Decoder
    from seegaan.stats import SeegaanWarning

    dec_clock = _Timed(loaded.fn)
    dec = Decoder(fn=dec_clock, identity=loaded.identity)
    null_clock = _Timed(interp.null_trajectories)
    object.__setattr__(interp, "null_trajectories", null_clock)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SeegaanWarning)
            t0 = time.perf_counter()
            result = seegaan.sequence(interp, dec, seed=0, **kwargs)
            _sync(dev)
            wall = time.perf_counter() - t0
    finally:
        object.__delattr__(interp, "null_trajectories")
    a = result.attrs
    return {
        "wall_s": wall,
        "decoding_s": dec_clock.seconds,
        "decoding_share": dec_clock.seconds / wall,
        "null_trajectories_s": null_clock.seconds,
        "other_s": wall - dec_clock.seconds - null_clock.seconds,
        "frames_decoded": dec_clock.rows,
        "decoder_calls": dec_clock.calls,
        "decoding_images_per_s": dec_clock.rows / dec_clock.seconds,
        "images_per_s_of_wall": dec_clock.rows / wall,
        "method": a["method"],
        "statistic": a["statistic"],
        "correction": a["correction"],
        "scheme": a["permutation_scheme"],
        "precision": a["precision"],
        "significant_pixels": int(result.significant.sum()),
        "warnings": sorted({str(w.message)[:200] for w in caught}),
    }


# ---------------------------------------------------------------------------------------------------
# subprocesses, output
# ---------------------------------------------------------------------------------------------------


def _write_json(path: Path, obj) -> None:
    tmp = Path(f"{path}.tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
    os.replace(tmp, path)


_CHILDREN: dict = {}


def _terminate(signum, frame):
    """SIGTERM (the shell's ``timeout``): kill a running child's process group, then stop."""
    for proc in list(_CHILDREN.values()):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    raise SystemExit(128 + signum)


def run_child(kind: str, args, seconds: float, workdir: Path) -> dict:
    """Run ``--child kind`` for at most ``seconds`` (its whole process group killed then; its output goes
    straight to ours); its JSON, as far as it got, plus ``wall_s`` and ``status``."""
    out = workdir / f"{kind}.json"
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        kind,
        "--child-out",
        str(out),
        "--child-seconds",
        str(max(1.0, seconds - 3)),
        "--device",
        args.device,
        "--perm",
        str(args.perm or 0),
    ]
    if args.dry:
        cmd.append("--dry")
    sys.stdout.flush()
    t0 = time.perf_counter()
    # its own process group (inductor's compile workers included), in our session: killed as one, by the
    # time limit or by _terminate when we are stopped
    proc = _CHILDREN[kind] = subprocess.Popen(cmd, process_group=0)
    try:
        proc.wait(timeout=seconds)
        status = "finished" if proc.returncode == 0 else f"failed (exit {proc.returncode}; its output is in the log)"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        status = f"killed at its {seconds:.0f} s limit"
    finally:
        _CHILDREN.pop(kind, None)
    got = json.loads(out.read_text()) if out.exists() else {}
    got.update(status=status, wall_s=time.perf_counter() - t0)
    print(f"{kind}: {status} after {got['wall_s']:.1f} s", flush=True)
    return got


def environment(dev) -> dict:
    import torch

    env = {
        "date": _dt.date.today().isoformat(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(dev),
    }
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        env.update(
            gpu=props.name,
            gpu_memory_gib=props.total_memory / 2**30,
            sms=props.multi_processor_count,
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
        )
    else:
        env["cpu"] = platform.processor() or platform.machine()
    with contextlib.suppress(Exception):
        env["commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    return env


def summary(res: dict) -> dict:
    out = {}
    for prec in ("strict_fp32", "tf32", "bf16_autocast"):
        rows = [r for r in res.get("decode", []) + res.get("compile", {}).get("rows", []) if r["precision"] == prec]
        for batch in sorted({r["batch"] for r in rows}, reverse=True):
            at = [r for r in rows if r["batch"] == batch]
            base = next((r for r in at if r["variant"] == "base"), None)
            best = max(at, key=lambda r: r["pct_of_conv"])
            out[f"{prec}_batch{batch}"] = {
                "base_images_per_s": base and base["images_per_s"],
                "base_pct_of_conv": base and base["pct_of_conv"],
                "best_variant": best["variant"],
                "best_images_per_s": best["images_per_s"],
                "best_pct_of_conv": best["pct_of_conv"],
                "meets_90pct": best["pct_of_conv"] >= 90.0,
            }
    runs = res.get("sequence", {}).get("runs", [])
    if runs:
        r = runs[0]
        out["sequence"] = {
            k: r[k]
            for k in (
                "wall_s",
                "decoding_s",
                "decoding_share",
                "frames_decoded",
                "decoding_images_per_s",
                "images_per_s_of_wall",
            )
        }
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="write the results here (rewritten after every part)")
    ap.add_argument("--device", default=None, help="cuda (default) or cpu")
    ap.add_argument("--dry", action="store_true", help="tiny sizes on the CPU: a rehearsal of the GPU call")
    ap.add_argument("--budget", type=float, default=None, help="seconds for everything (default 400; --dry 55)")
    ap.add_argument("--perm", type=int, default=0, help="permutations of the sequence (default 1,000; --dry 20)")
    ap.add_argument(
        "--skip", nargs="*", default=[], choices=["decode", "sequence", "bf16", "compile"], help="parts to leave out"
    )
    ap.add_argument("--child", choices=["sequence", "compile"], help=argparse.SUPPRESS)
    ap.add_argument("--child-out", help=argparse.SUPPRESS)
    ap.add_argument("--child-seconds", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.device = args.device or ("cpu" if args.dry else "cuda")
    sizes = DRY if args.dry else GPU
    _importable()
    import torch

    if args.dry:
        torch.set_num_threads(1)
    if args.child:
        (sequence_child if args.child == "sequence" else compile_child)(args, sizes, Path(args.child_out))
        return {}
    signal.signal(signal.SIGTERM, _terminate)
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA GPU is available (use --dry to rehearse on the CPU)")
    budget = args.budget if args.budget is not None else sizes["budget"]
    deadline = Deadline(budget)
    t_start = time.perf_counter()
    from seegaan.model.config import ModelConfig

    cfg = ModelConfig(image_size=sizes["image_size"])
    res: dict = {
        "script": "benchmarks/bench_gpu.py",
        "argv": sys.argv[1:] if argv is None else list(argv),
        "dry": args.dry,
        "budget_s": budget,
        "env": environment(dev),
        "skipped": [],
    }

    def save():
        res["elapsed_s"] = time.perf_counter() - t_start
        res["summary"] = summary(res)
        if args.json:
            _write_json(Path(args.json), res)

    save()
    where = res["env"].get("gpu", res["env"]["device"])
    print(f"bench_gpu on {where}, torch {torch.__version__}, budget {budget:.0f} s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            if "decode" not in args.skip:
                # the decoding part may use what is left after the sequence's and compile's shares
                part = Deadline(sizes["decode_share"] * budget)
                decode_part(res, cfg, dev, sizes, part, save)
            if "sequence" not in args.skip:
                seconds = min(
                    sizes["sequence_timeout"],
                    deadline.left() - (sizes["compile_min"] if "compile" not in args.skip else 5),
                )
                if seconds >= sizes["sequence_min"]:
                    res["sequence"] = run_child("sequence", args, seconds, Path(tmp))
                else:
                    res["skipped"].append("sequence: out of time")
                save()
            if "bf16" not in args.skip:
                bf16_part(res, cfg, dev, sizes, deadline, save)
            if "compile" not in args.skip:
                seconds = min(sizes["compile_timeout"], deadline.left() - 5)
                if seconds >= sizes["compile_min"]:
                    res["compile"] = run_child("compile", args, seconds, Path(tmp))
                else:
                    res["skipped"].append("compile: out of time")
        except SystemExit:  # SIGTERM (_terminate): keep what the running child had written
            res["stopped"] = "terminated (SIGTERM, e.g. the shell's time limit) before the end"
            for kind in ("sequence", "compile"):
                path = Path(tmp) / f"{kind}.json"
                if kind not in res and path.exists():
                    res[kind] = {**json.loads(path.read_text()), "status": "stopped with the script"}
            raise
        finally:
            save()
    print(json.dumps(res["summary"], indent=1))
    for s in res["skipped"]:
        print(f"skipped: {s}")
    print(f"total {res['elapsed_s']:.1f} s of a {budget:.0f} s budget" + (f"; wrote {args.json}" if args.json else ""))
    return res


if __name__ == "__main__":
    main()
