"""Write the frontal radiographs, resized for the GPU run, into a folder that can travel with the device tool.

    python benchmarks/prepare_gpu_data.py [--data ../shared/data/cxr] [--size 128] [--out .cxr128]

``../shared/data/cxr`` does not travel to a lent GPU machine (and at 56 MB would not fit beside the repository),
so ``benchmarks/gpu_session.sh`` trains on this copy: every PA/AP image read by ``seegaan.data.read_image``
(bicubic resize, per-image min-max to [-1, 1]) and stored as 8-bit PNG (~20 MB at 128x128), with the rows of
``metadata.csv`` for those images. Keep the folder out of git (``.git/info/exclude``).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path,
                    default=Path(os.environ.get("SEEGAAN_CXR_DIR", REPO.parent / "shared" / "data" / "cxr")))
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--out", type=Path, default=REPO / ".cxr128")
    args = ap.parse_args()

    import pandas as pd
    from PIL import Image

    from seegaan.data.images import read_image

    table = pd.read_csv(args.data / "metadata.csv")
    table = table[table["view"].isin(["PA", "AP"])]
    (args.out / "images").mkdir(parents=True, exist_ok=True)
    for image_id in table["image_id"]:
        x = np.asarray(read_image(args.data / "images" / f"{image_id}.png", size=args.size)).squeeze()
        pixels = np.round((x + 1) * 127.5).clip(0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(args.out / "images" / f"{image_id}.png", optimize=True)
    table.to_csv(args.out / "metadata.csv", index=False)
    print(f"{len(table)} images at {args.size}x{args.size} in {args.out}")


if __name__ == "__main__":
    main()
