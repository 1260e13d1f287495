"""Build the API reference from the docstrings: ``python docs/build_api.py [--out DIR]``.

The tool is pdoc (``pip install 'seegaan[dev]'``): one light, pure-Python package from PyPI that renders
NumPy-style docstrings from the imported modules themselves -- no configuration tree, no extension set to
keep in step, nothing to drift from the code. Every warning is an error (a module that fails to import, a
docstring pdoc cannot render, a broken cross-reference in a public signature), so ``.ci/run`` fails when
the reference would be wrong. The HTML goes to ``docs/api/`` (not committed; open ``docs/api/index.html``).

What is documented: the public packages below, each with its ``__all__``; private modules (``_internal``)
and the command-line apps (documented in ``docs/cli.md``) are left out.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: the documented modules, in the order of the index
MODULES = [
    "seegaan",
    "seegaan.data",
    "seegaan.interpolation",
    "seegaan.interpolation.methods",
    "seegaan.interpolation.nullmodel",
    "seegaan.sequences",
    "seegaan.options",
    "seegaan.pixeltest",
    "seegaan.calibration",
    "seegaan.decoder",
    "seegaan.decoding",
    "seegaan.stats",
    "seegaan.stats.engine",
    "seegaan.stats.permutation",
    "seegaan.stats.correction",
    "seegaan.stats.maxstat",
    "seegaan.stats.spatial",
    "seegaan.stats.mask",
    "seegaan.explain",
    "seegaan.viz",
    "seegaan.formats",
    "seegaan.model",
    "seegaan.phantom",
    "seegaan.demo",
    "seegaan.testing",
]


def build(out: Path) -> list[Path]:
    """Render :data:`MODULES` into ``out`` (replaced only when the whole build succeeded); the files written."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.path.insert(0, str(ROOT))
    import pdoc
    import pdoc.render

    pdoc.render.configure(
        docformat="numpy",
        show_source=False,
        search=False,
        footer_text="seegaan API reference (generated: python docs/build_api.py)",
    )
    out = Path(out)
    tmp = Path(tempfile.mkdtemp(prefix=".api-", dir=out.parent if out.parent.exists() else None))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            pdoc.pdoc(*MODULES, output_directory=tmp)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return sorted(out.rglob("*.html"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "api", help="output folder (default docs/api)")
    args = parser.parse_args(argv)
    try:
        files = build(args.out)
    except Warning as warning:  # warnings are errors: one line, exit 1
        print(f"error: the API reference has a problem: {warning}", file=sys.stderr)
        return 1
    print(f"wrote {len(files)} pages to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
