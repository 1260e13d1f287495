"""Results to look at and share: figures, animations, HTML reports and the ``ds.seegaan`` accessor.

datasets
    The sequence-dataset helpers every view shares (validation, step labels, per-step counts, the
    summary); it imports none of the views.
figures
    :func:`plot_sequence` (the paper's Fig. 1c layout) and the panel helpers.
animation
    :func:`animate`: GIF (Pillow) or MP4 (imageio-ffmpeg) of a sequence.
report
    :func:`make_report`: one self-contained HTML page.
accessor
    :func:`open_sequence` and the ``ds.seegaan`` accessor that delegates to the views.
"""

from __future__ import annotations

from seegaan._internal.lazy import lazy_module

_LAZY = {
    "plot_sequence": "seegaan.viz.figures",
    "animate": "seegaan.viz.animation",
    "make_report": "seegaan.viz.report",
    "render_report": "seegaan.viz.report",
    "open_sequence": "seegaan.viz.accessor",
    "validate_sequence": "seegaan.viz.datasets",
    "sequence_summary": "seegaan.viz.datasets",
    "SequenceAccessor": "seegaan.viz.accessor",
}

__getattr__, __dir__, __all__ = lazy_module("seegaan.viz", _LAZY)
