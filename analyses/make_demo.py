"""Build the bundled demo: a phantom cohort, a small model trained on the CPU, and its latent cohort.

    python analyses/make_demo.py                      # phantom -> train -> encode -> seegaan/demo/
    python analyses/make_demo.py --steps 200 --work /tmp/demo-smoke --no-install   # a quick smoke run

Steps (each resumes or is skipped when its output exists, so the script can be re-run after a kill):

1. ``seegaan.phantom.write_phantom``: ``--n`` phantom radiographs at ``--size`` px with clinical table and
   ground-truth effect maps (``WORK/phantom``);
2. ``seegaan.model.train``: the adversarial autoencoder at a CPU-sized width (``WORK/train``, resumable);
3. ``seegaan.model.encode_images``: every phantom image through the best checkpoint's EMA encoder
   (``WORK/cohort.nc``);
4. install: copy the best checkpoint, the cohort and the truth maps into ``seegaan/demo/`` (what
   ``seegaan-stats interpolate`` uses when no ``--cohort``/``--decoder`` is given);
5. the demo CNN: ``seegaan-stats train-cnn --target bnpp --transform log`` on the same phantom images
   (:class:`seegaan.explain.smallcnn.SmallCNN`, 12 epochs, seed 0, about 15 s), installed as
   ``seegaan/demo/phantom_cnn.pt`` (what ``seegaan-stats explain`` uses when no ``--model`` is given).
   ``--cnn-only`` runs this step alone (the phantom is rendered again from its seed when absent).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=REPO / "analyses" / "output" / "demo")
    ap.add_argument("--n", type=int, default=1600, help="phantom images")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--width", type=int, default=32, help="maximum channel width of the small model")
    ap.add_argument("--latent", type=int, default=64)
    ap.add_argument(
        "--steps",
        type=int,
        default=29680,
        help="total steps (the installed model: 18,000 of batch 16 on the CPU, 4,120 of batch 16 and "
        "7,560 of batch 64 on a GPU)",
    )
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (also on resume)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--max-minutes", type=float, default=None, help="stop training cleanly after this many minutes (resumable)"
    )
    ap.add_argument("--train-only", action="store_true", help="stop after training (no encoding)")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (one is fastest for this small model on a shared 2-core CPU)",
    )
    ap.add_argument("--device", default="cpu", help="cpu or cuda (training and encoding)")
    ap.add_argument("--no-install", action="store_true", help="do not copy the result into seegaan/demo/")
    ap.add_argument("--cnn-only", action="store_true", help="only train (and install) the demo CNN, step 5")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from seegaan.data import load_dataset
    from seegaan.model import small_config
    from seegaan.model.tasks import encode_images
    from seegaan.model.training import TrainConfig, train
    from seegaan.phantom import write_phantom

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    phantom = work / "phantom"
    if not phantom.exists():
        t0 = time.time()
        write_phantom(phantom, n=args.n, size=args.size, seed=args.seed)
        print(f"phantom: {args.n} images in {time.time() - t0:.1f} s")
    if args.cnn_only:
        demo_cnn(phantom, work, seed=args.seed, install=not args.no_install)
        return
    data = load_dataset(phantom / "images", phantom / "clinical.csv", size=args.size, seed=args.seed)
    cfg = small_config(args.size, width=args.width, latent_size=args.latent)
    tcfg = TrainConfig(
        steps=args.steps,
        batch_size=args.batch,
        lr=args.lr,
        checkpoint_every=250,
        val_every=250,
        val_images=128,
        seed=args.seed,
        max_minutes=args.max_minutes,
    )
    t0 = time.time()
    result = train(data, out_dir=work / "train", model_config=cfg, config=tcfg, resume=True, device=args.device)
    print(f"training: step {result.step} in {time.time() - t0:.0f} s this run; best {result.best}")
    if args.train_only:
        return
    best = result.best or result.last
    cohort_path = work / "cohort.nc"
    encode_images(best, data, out=cohort_path, overwrite=True, device=args.device)
    summary = {
        "steps": result.step,
        "history": result.history[-5:],
        "baseline_l2": result.baseline_l2,
        "perceptual": result.perceptual,
        "checkpoint": str(best),
    }
    (work / "train_summary.json").write_text(json.dumps(summary, indent=2, default=str))
    if not args.no_install:
        dest = REPO / "seegaan" / "demo"
        (dest / "truth").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(best, dest / "phantom_model.pt")
        shutil.copyfile(cohort_path, dest / "phantom_cohort.nc")
        for f in (phantom / "truth").iterdir():
            shutil.copyfile(f, dest / "truth" / f.name)
        shutil.copyfile(phantom / "phantom.json", dest / "phantom.json")
        print(f"installed the demo into {dest}")
    demo_cnn(phantom, work, seed=args.seed, install=not args.no_install)


def demo_cnn(phantom: Path, work: Path, *, seed: int, install: bool) -> None:
    """Step 5: the demo CNN (log NT-proBNP) through ``seegaan-stats train-cnn``, installed into seegaan/demo/."""
    from seegaan.cli.stats_cnn import TargetTransform, train_cnn_command

    out = work / "phantom_cnn.pt"
    train_cnn_command(
        images=phantom / "images",
        table=phantom / "clinical.csv",
        target="bnpp",
        transform=TargetTransform("log"),
        out=out,
        seed=seed,
        overwrite=True,
    )
    if install:
        shutil.copyfile(out, REPO / "seegaan" / "demo" / "phantom_cnn.pt")
        print("installed the demo CNN into seegaan/demo/phantom_cnn.pt")


if __name__ == "__main__":
    main()
