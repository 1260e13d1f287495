"""``seegaan-stats train-cnn``: a small CNN (:class:`seegaan.explain.smallcnn.SmallCNN`) trained on radiographs.

The file it writes loads in ``explain``, ``predict``, ``local --model`` and ``interpolate --model`` as
``--model FILE``, and Grad-CAM works on it.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer

from seegaan._internal.choices import cli_enum
from seegaan._internal.errors import SeegaanError
from seegaan._internal.io import check_output_path
from seegaan._internal.runtime import command_threads
from seegaan.cli._common import MODEL_HELP, default_inputs, default_model, progress_bar, user_errors
from seegaan.data.cohort import feature_kind, feature_missing, open_cohort
from seegaan.data.dataset import load_dataset
from seegaan.explain.attribution import plot_attribution_row
from seegaan.explain.cases import CASES, case_attributions, case_target, positive_level, select_cases
from seegaan.explain.cnn import load_model
from seegaan.explain.counterfactual import explain
from seegaan.explain.local import local_sequence
from seegaan.explain.predictions import cnn_along, predict

Task = cli_enum("Task", ("auto", "regression", "binary"))
TargetTransform = cli_enum("TargetTransform", ("none", "log"))


def _target(table, column: str, task: str, transform: str, positive: str | None):
    """(values, keep, task, description) of the training target ``column``."""
    if column not in table.columns:
        raise SeegaanError(f"the table has no column {column!r}; its columns: {', '.join(map(str, table.columns))}")
    values = table[column].to_numpy()
    keep = ~feature_missing(values)
    kind = feature_kind(values[keep])
    if task == "auto":
        task = "regression" if kind == "numeric" and np.unique(values[keep]).size > 2 else "binary"
    if task == "regression":
        if kind != "numeric":
            raise SeegaanError(f"{column!r} is not numeric; use --task binary with --positive LEVEL")
        y = values.astype(np.float64)
        if transform == "log":
            keep &= np.where(keep, y > 0, False)
            y = np.log(np.where(keep, y, 1.0))
        what = f"{'log ' if transform == 'log' else ''}{column}"
        return y, keep, task, what
    if transform != "none":
        raise SeegaanError("--transform applies to --task regression")
    positive = positive_level(values[keep], column, positive)
    y = (values.astype(str) == positive).astype(np.float64)
    return y, keep, task, f"logit of {column} = {positive}"


def train_cnn_command(
    images: Annotated[Path, typer.Option(help="Folder of radiographs (PNG, JPEG, DICOM, .npy), or a table of paths.")],
    target: Annotated[str, typer.Option(help="Column of the clinical table the CNN learns.")],
    out: Annotated[Path, typer.Option(help="Output CNN file (.pt).")],
    table: Annotated[Path | None, typer.Option(help="Clinical table (CSV/TSV/Parquet) joined on image_id.")] = None,
    task: Annotated[Task, typer.Option(help="regression (MSE) or binary (a logit); auto: by the column.")] = Task(
        "auto"
    ),
    transform: Annotated[TargetTransform, typer.Option(help="Regression: learn log(target).")] = TargetTransform(
        "none"
    ),
    positive: Annotated[
        str | None, typer.Option(help="Binary: the level that is 1 (default: True or the last).")
    ] = None,
    size: Annotated[int, typer.Option(help="Image side the CNN reads (a multiple of 8).")] = 64,
    width: Annotated[int, typer.Option(help="Channels of the first convolution.")] = 8,
    epochs: Annotated[int, typer.Option(help="Passes over the training images.")] = 12,
    flip: Annotated[bool, typer.Option(help="Horizontal-flip augmentation.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the split, the weights and the batches (recorded).")] = 0,
    threads: Annotated[int, typer.Option(help="CPU threads for torch.")] = 1,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
):
    """Train a small CNN on radiographs (patient-level train/val/test split); write a file explain can load."""
    from seegaan.explain import smallcnn  # deferred: torch (heavy)

    with user_errors():
        inputs = [images, table]
        check_output_path(out, overwrite=overwrite, inputs=inputs, suffixes=".pt")
        if not (size >= 8 and size % 8 == 0):
            raise SeegaanError(f"--size must be a multiple of 8, not {size}")
        if epochs < 1 or width < 1:
            raise SeegaanError("--epochs and --width must be at least 1")
        data = load_dataset(images, table, size=size, seed=seed)
        y, keep, task_name, what = _target(data.table, target, task.value, transform.value, positive)
        split = data.table["split"].to_numpy(str)
        part = {s: np.flatnonzero(keep & (split == s)) for s in ("train", "val", "test")}
        if part["train"].size < 2 or part["val"].size < 1:
            raise SeegaanError(
                f"{part['train'].size} training and {part['val'].size} validation images have {target}; "
                "the CNN needs more"
            )
        with command_threads(threads, torch=True):
            x = data.array()[:, 0]
            start = time.perf_counter()
            with progress_bar(f"training ({epochs} epochs)", epochs) as advance:
                net, history = smallcnn.train_cnn(
                    x[part["train"]],
                    y[part["train"]],
                    x[part["val"]],
                    y[part["val"]],
                    task=task_name,
                    seed=seed,
                    epochs=epochs,
                    width=width,
                    flip=flip,
                    progress=advance,
                )
            seconds = time.perf_counter() - start
            scores = {
                s: smallcnn.metrics(task_name, y[idx], smallcnn.predict_array(net, x[idx]))
                for s, idx in part.items()
                if idx.size
            }
        meta = {
            "target": what,
            "task": task_name,
            "column": target,
            "images": str(images),
            "table": "" if table is None else str(table),
            "split": "load_dataset patient-level split (0.8/0.1/0.1)",
            "seed": seed,
            "epochs": epochs,
            "width": width,
            "size": size,
            "flip": flip,
            "train_seconds": round(seconds, 1),
            "metrics": scores,
            "history": history,
            "command_line": " ".join(["seegaan-stats", *sys.argv[1:]]),
        }
        smallcnn.save_cnn(net, out, meta, overwrite=overwrite, inputs=inputs)
        for s, m in scores.items():
            typer.echo(
                f"{s:<6}: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in m.items())
            )
        typer.echo(f"wrote {out} ({what}, {task_name}, {seconds:.1f} s)")


def cases_command(
    truth: Annotated[str, typer.Option(help="Feature holding the truth (a class, or a number on the CNN's scale).")],
    threshold: Annotated[float, typer.Option(help="The CNN says positive above this (and a numeric truth is, too).")],
    out_dir: Annotated[Path, typer.Option(help="Folder to create: cases.csv and one panel per case.")],
    model: Annotated[
        str | None, typer.Option(help=MODEL_HELP + " Default with the bundled demo: its CNN of log NT-proBNP.")
    ] = None,
    cohort: Annotated[Path | None, typer.Option(help="Latent cohort (.nc); default: the bundled demo.")] = None,
    decoder: Annotated[str | None, typer.Option(help="Checkpoint or module:callable; default: the demo model.")] = None,
    images: Annotated[
        Path | None,
        typer.Option(help="Folder of the cohort's radiographs: the CNN decides on them (default: on G(w))."),
    ] = None,
    truth_transform: Annotated[
        TargetTransform, typer.Option(help="Numeric truth on the CNN's scale: log when the CNN predicts log(truth).")
    ] = TargetTransform("none"),
    positive: Annotated[
        str | None, typer.Option(help="Class truth: the positive level (default: True or the last).")
    ] = None,
    margin: Annotated[float, typer.Option(help="Class truth: FP/FN are solved to threshold -/+ margin.")] = 1.0,
    all_images: Annotated[bool, typer.Option(help="Draw the cases from every image, not only val and test.")] = False,
    perm: Annotated[int, typer.Option(help="Null draws of the TP/TN local sequences.")] = 199,
    seed: Annotated[int, typer.Option(help="Seed of the case draw and of the tests (recorded).")] = 0,
    threads: Annotated[int, typer.Option(help="CPU threads for torch.")] = 1,
):
    """TP/FP/FN/TN of a CNN, one image each, explained as the paper's Fig. 6 (local sequence or λ-solve, maps)."""

    with user_errors():
        model = default_model(model, cohort, decoder)
        cohort, decoder = default_inputs(cohort, decoder)
        if out_dir.exists():
            raise SeegaanError(f"{out_dir} already exists; choose a new --out-dir")
        parent = out_dir.parent if str(out_dir.parent) else Path(".")
        if not parent.is_dir():
            raise SeegaanError(f"the folder {parent} does not exist; create it first")
        if not margin > 0:
            raise SeegaanError(f"--margin must be positive, not {margin}")
        with command_threads(threads, torch=True):
            net = load_model(model)
            data = open_cohort(cohort)
            with progress_bar("CNN over the cohort", None) as advance:
                scored = predict(
                    data,
                    net,
                    name="cnn_prediction",
                    images=images,
                    decoder=None if images else decoder,
                    progress=advance,
                )
            selection = select_cases(
                scored,
                scored["cnn_prediction"].values,
                truth=truth,
                threshold=threshold,
                truth_transform=truth_transform.value,
                positive=positive,
                splits=None if all_images else ("val", "test"),
                seed=seed,
            )
            tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".part", dir=parent))
            try:
                rows = []
                for case in CASES:
                    image_id = selection.chosen[case]
                    if image_id is None:
                        rows.append({"case": case, "image_id": "", "note": "no eligible image in this case"})
                        continue
                    if case in ("TP", "TN"):
                        result = local_sequence(
                            scored, decoder, image_id=image_id, feature=truth, n_perm=perm, seed=seed
                        )
                        result = cnn_along(result, net)
                        result.save(tmp / f"{case}.nc", tmp / f"{case}.png")
                        recon, what = result.reconstruction, f"local sequence along {truth}"
                    else:
                        target = case_target(selection, image_id, margin)
                        feature = truth if selection.attrs["truth_kind"] == "class" else "cnn_prediction"
                        result = explain(scored, decoder, net, image_id=image_id, target=target, feature=feature)
                        result.save(tmp / f"{case}.nc", tmp / f"{case}.png")
                        recon, what = result.reconstruction, f"counterfactual to {target:.4g}"
                    maps = case_attributions(net, recon)
                    plot_attribution_row(recon, maps, title=f"{case} {image_id}", path=tmp / f"{case}_maps.png")
                    row = selection.table.loc[selection.table["image_id"] == image_id].iloc[0]
                    rows.append(
                        {
                            "case": case,
                            "image_id": image_id,
                            "split": row["split"],
                            "truth": row["truth"],
                            "prediction": row["prediction"],
                            "explained_by": what,
                            "note": "",
                        }
                    )
                pd.DataFrame(rows).to_csv(tmp / "cases.csv", index=False)
                selection.table.to_csv(tmp / "all_cases.csv", index=False)
                os.replace(tmp, out_dir)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        counts = selection.counts()
        typer.echo("cases: " + ", ".join(f"{c} {counts[c]}" for c in CASES))
        for r in rows:
            typer.echo(f"{r['case']}: {r['image_id'] or '-'} {r.get('explained_by', r['note'])}")
        typer.echo(f"wrote {out_dir}")


def register(app: typer.Typer) -> None:
    """Add ``train-cnn`` and ``cases`` to the ``seegaan-stats`` app."""
    app.command("train-cnn")(train_cnn_command)
    app.command("cases")(cases_command)
