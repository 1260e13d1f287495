"""Benchmark of the model side on this machine: training and decoding images/s, conv-limit fraction, bf16.

Usage::

    python benchmarks/bench_model.py [--quick] [--json OUT.json]
    python benchmarks/bench_model.py --quick --image-size 64           # smoke run in seconds (tested)
    python benchmarks/bench_model.py --device cuda --json gpu.json     # on a GPU (TF32 on, bf16 measured too)

Measures, with randomly initialised networks (speed does not depend on the weights):

* the throughput (GFLOP/s) of one 3x3 convolution of the paper generator (512 -> 512 at 32x32, batch 4)
  in fp32 and under bf16 autocast: the CPU's practical arithmetic limit for this network;
* decoding images/s of the paper generator (256x256, ~56 GFLOP/image) and of a small 64x64 model, fp32
  and bf16 autocast, and decoding as a fraction of the conv limit;
* the largest pixel difference between bf16 and fp32 decodes (images in [-1, 1]);
* training images/s (one full step: D with lazy R1 + E/G/mapping) for both configurations.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import torch

from seegaan.model.config import ModelConfig, small_config
from seegaan.model.networks import build_networks, conv_flops_per_image
from seegaan.model.training import TrainConfig, Trainer, _Dist

DEVICE = torch.device("cpu")


def _sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


def _timeit(fn, *, repeat: int, warmup: int = 1) -> float:
    """Best-of-``repeat`` seconds of ``fn()`` (GPU work waited for)."""
    for _ in range(warmup):
        fn()
    _sync()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        _sync()
        best = min(best, time.perf_counter() - t0)
    return best


def _autocast(bf16: bool):
    return torch.autocast(DEVICE.type, dtype=torch.bfloat16, enabled=bf16)


def conv_gflops(*, bf16: bool, repeat: int) -> float:
    flops = 2.0 * 4 * 512 * 512 * 9 * 32 * 32
    return flops / _timeit(_conv_runner(bf16=bf16), repeat=repeat) / 1e9


def _decoder_runner(cfg: ModelConfig, *, batch: int, bf16: bool, channels_last: bool = True):
    """A function decoding one batch as the decoder does (channels-last, in-place inference path)."""
    nets = build_networks(cfg).to(DEVICE)
    gen = nets.generator.eval().use_channels_last(channels_last)
    z = torch.randn(batch, cfg.latent_size, generator=torch.Generator().manual_seed(0)).to(DEVICE)
    w = nets.mapping(z).detach()
    out = {}

    def run():
        with torch.inference_mode(), _autocast(bf16):
            out["img"] = gen(w, noise_mode="const").float()

    return run, out


def _conv_runner(*, bf16: bool):
    x, w = torch.randn(4, 512, 32, 32, device=DEVICE), torch.randn(512, 512, 3, 3, device=DEVICE)

    def run():
        with torch.inference_mode(), _autocast(bf16):
            torch.nn.functional.conv2d(x, w, padding=1)

    return run


def decode_rate(
    cfg: ModelConfig, *, batch: int, bf16: bool, repeat: int, channels_last: bool = True
) -> tuple[float, float, torch.Tensor]:
    """(images/s, conv GFLOP/s measured in alternation with it, last images).

    The decode and the reference 3x3 convolution are timed in alternation, best of ``repeat`` each, so
    that a load change on a shared machine affects both alike."""
    run, out = _decoder_runner(cfg, batch=batch, bf16=bf16, channels_last=channels_last)
    conv = _conv_runner(bf16=bf16)
    run(), conv()
    best_decode = best_conv = float("inf")
    for _ in range(repeat):
        best_conv = min(best_conv, _timeit(conv, repeat=1, warmup=0))
        best_decode = min(best_decode, _timeit(run, repeat=1, warmup=0))
    conv_flops = 2.0 * 4 * 512 * 512 * 9 * 32 * 32
    return batch / best_decode, conv_flops / best_conv / 1e9, out["img"].cpu()


def train_rate(cfg: ModelConfig, *, batch: int, steps: int, bf16: bool = False) -> float:
    trainer = Trainer(
        cfg, TrainConfig(batch_size=batch, bf16=bf16, channels_last=DEVICE.type == "cuda"), device=DEVICE, dist=_Dist()
    )
    x = torch.rand(batch, cfg.channels, cfg.image_size, cfg.image_size, device=DEVICE) * 2 - 1
    trainer.train_step(x, sync=False)  # warm-up (R1 step); as train() does, losses stay on the device
    _sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(x, sync=False)
    _sync()
    return batch * steps / (time.perf_counter() - t0)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer repeats, skip paper-config training; prints the JSON, writes no file without --json",
    )
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--only", choices=["decode", "train"], help="run one half of the benchmark")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (cuda runs the GPU protocol)")
    parser.add_argument(
        "--image-size",
        type=int,
        default=256,
        help="image size of the paper config (default 256; smaller for a smoke run)",
    )
    args = parser.parse_args(argv)
    if args.device != "cpu":
        return gpu_main(args)
    repeat = 2 if args.quick else 4
    paper, small = ModelConfig(image_size=args.image_size), small_config(64, width=32, latent_size=128)
    res = {
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "load_average_start": os.getloadavg()[0],
    }
    res["conv_gflops_fp32"] = conv_gflops(bf16=False, repeat=repeat)
    res["conv_gflops_bf16"] = conv_gflops(bf16=True, repeat=repeat)
    res["paper_generator_gflop_per_image"] = conv_flops_per_image(paper) / 1e9
    if args.only != "train":
        decode_benchmarks(res, paper, small, repeat=repeat)
    if args.only != "decode":
        train_benchmarks(res, paper, small, quick=args.quick)
    res["load_average_end"] = os.getloadavg()[0]
    text = json.dumps(res, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(text + "\n")
    return res


def gpu_main(args) -> dict:
    """On a GPU: decoding and training images/s of the paper config (fp32 with TF32, and bf16 autocast)
    at a few batch sizes, and the 3x3-conv throughput of the card, as one JSON."""
    global DEVICE
    DEVICE = torch.device(args.device)
    if DEVICE.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA GPU is available")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    paper = ModelConfig(image_size=args.image_size)
    res = {
        "image_size": args.image_size,
        "device": torch.cuda.get_device_name(DEVICE) if DEVICE.type == "cuda" else str(DEVICE),
        "torch": torch.__version__,
        "paper_generator_gflop_per_image": conv_flops_per_image(paper) / 1e9,
    }
    for bf16 in (False, True):
        tag = "bf16" if bf16 else "tf32"
        res[f"conv_gflops_{tag}"] = conv_gflops(bf16=bf16, repeat=10)
        for batch in (4, 32, 128):
            rate, _, _ = decode_rate(paper, batch=batch, bf16=bf16, repeat=5)
            res[f"decode_paper_{tag}_batch{batch}_images_per_s"] = rate
        for batch in (4, 32):
            res[f"train_paper_{tag}_batch{batch}_images_per_s"] = train_rate(paper, batch=batch, steps=10, bf16=bf16)
        print(json.dumps(res, indent=2), flush=True)
        if args.json:  # after each half, so that a time limit keeps what was measured (it cut bf16 on the H200)
            tmp = f"{args.json}.tmp"
            with open(tmp, "w") as fh:
                fh.write(json.dumps(res, indent=2) + "\n")
            os.replace(tmp, args.json)
    return res


def decode_benchmarks(res: dict, paper: ModelConfig, small: ModelConfig, *, repeat: int) -> None:
    from seegaan.model import keep_freed_memory

    # as the seegaan commands that decode on the CPU do (SEEGAAN_KEEP_FREED_MEMORY=0 measures without it)
    res["decode_keeps_freed_memory"] = keep_freed_memory()
    for name, cfg, batch in ((f"paper{paper.image_size}", paper, 4), ("small64", small, 32)):
        flops = conv_flops_per_image(cfg) / 1e9
        fp32, conv32, img32 = decode_rate(cfg, batch=batch, bf16=False, repeat=repeat)
        bf16, conv16, img16 = decode_rate(cfg, batch=batch, bf16=True, repeat=repeat)
        nchw, conv_nchw, _ = decode_rate(cfg, batch=batch, bf16=False, repeat=repeat, channels_last=False)
        res[f"decode_{name}_gflop_per_image"] = flops
        res[f"decode_{name}_fp32_images_per_s"] = fp32
        res[f"decode_{name}_fp32_fraction_of_conv_limit"] = fp32 * flops / conv32
        res[f"decode_{name}_bf16_images_per_s"] = bf16
        res[f"decode_{name}_bf16_fraction_of_conv_limit"] = bf16 * flops / conv16
        res[f"decode_{name}_bf16_speedup"] = bf16 / fp32
        res[f"decode_{name}_bf16_max_abs_diff"] = float((img32 - img16).abs().max())
        res[f"decode_{name}_bf16_mean_abs_diff"] = float((img32 - img16).abs().mean())
        res[f"decode_{name}_fp32_nchw_images_per_s"] = nchw
        res[f"decode_{name}_fp32_nchw_fraction_of_conv_limit"] = nchw * flops / conv_nchw


def train_benchmarks(res: dict, paper: ModelConfig, small: ModelConfig, *, quick: bool) -> None:
    """Training images/s with all threads and with one (on a shared CPU, spinning OpenMP threads of many
    small ops can make two threads far slower than one)."""
    threads = torch.get_num_threads()
    for n in sorted({threads, 1}, reverse=True):
        torch.set_num_threads(n)
        res[f"train_small64_threads{n}_images_per_s"] = train_rate(small, batch=8, steps=4 if quick else 8)
        if not quick:
            res[f"train_paper{paper.image_size}_threads{n}_images_per_s"] = train_rate(paper, batch=4, steps=2)
    torch.set_num_threads(threads)


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
