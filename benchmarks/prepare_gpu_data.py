"""Write the frontal radiographs, resized for the GPU run, into a folder that can travel with the device tool.

    python benchmarks/prepare_gpu_data.py [--data ../shared/data/cxr] [--size 128] [--out .cxr128]
    python benchmarks/prepare_gpu_data.py --quick   # smoke run (tested): the first 8 images at 32x32 into a
                                                    # new temporary folder (or --out), not .cxr128

``../shared/data/cxr`` does not travel to a lent GPU machine (and at 56 MB would not fit beside the repository),
so ``benchmarks/gpu_session.sh`` trains on this copy: every PA/AP image read by ``seegaan.data.read_image``
(bicubic resize, per-image min-max to [-1, 1]) and stored as 8-bit PNG (~20 MB at 128x128), with the rows of
``metadata.csv`` for those images. Keep the folder out of git (``.git/info/exclude``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--data", type=Path, default=Path(os.environ.get("SEEGAAN_CXR_DIR", REPO.parent / "shared" / "data" / "cxr"))
    )
    ap.add_argument("--size", type=int, default=None, help="image side (default 128; 32 with --quick)")
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default .cxr128 in the repository; a new temporary folder with --quick)",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: the first 8 frontal images, at 32x32 unless --size, into a new temporary folder unless --out",
    )
    args = ap.parse_args()
    if args.size is None:
        args.size = 32 if args.quick else 128
    if args.out is None:
        args.out = Path(tempfile.mkdtemp(prefix="cxr_quick_")) if args.quick else REPO / ".cxr128"

    import pandas as pd
    from PIL import Image

    from seegaan.data.images import read_image

    table = pd.read_csv(args.data / "metadata.csv")
    table = table[table["view"].isin(["PA", "AP"])]
    if args.quick:
        table = table.head(8)
    (args.out / "images").mkdir(parents=True, exist_ok=True)
    for image_id in table["image_id"]:
        x = np.asarray(read_image(args.data / "images" / f"{image_id}.png", size=args.size)).squeeze()
        pixels = np.round((x + 1) * 127.5).clip(0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(args.out / "images" / f"{image_id}.png", optimize=True)
    table.to_csv(args.out / "metadata.csv", index=False)
    print(f"{len(table)} images at {args.size}x{args.size} in {args.out}")


if __name__ == "__main__":
    main()
