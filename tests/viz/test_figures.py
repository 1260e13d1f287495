"""plot_sequence has no global side effects: no backend change, nothing left in pyplot's figure list."""

import os
import subprocess
import sys
from pathlib import Path

import seegaan
from seegaan.testing.cohorts import make_cohort
from seegaan.testing.decoders import linear8


def test_plot_leaves_pyplot_alone_and_writes_a_png(tmp_path):
    import matplotlib
    import matplotlib.pyplot as plt

    backend, figures = matplotlib.get_backend(), plt.get_fignums()
    interp = seegaan.interpolate(make_cohort(n=30, seed=2, effect=1.0), feature="age", steps=3)
    res = seegaan.sequence(interp, linear8, n_perm=20, seed=1)
    fig = res.plot(tmp_path / "seq.png")
    untested = seegaan.plot_sequence(seegaan.sequence(interp, linear8, n_perm=0).to_dataset(), max_steps=2)
    assert matplotlib.get_backend() == backend and plt.get_fignums() == figures
    assert (tmp_path / "seq.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert fig.get_suptitle().startswith("age") and len(untested.axes) == 2 * 2 + 1  # frames + colour bar
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seq.png"]  # no temporary file left


def test_plot_does_not_choose_a_backend():
    """In a fresh interpreter, plotting must not select the Agg backend for the user."""
    code = (
        "import matplotlib, seegaan\n"
        "from seegaan.viz.figures import plot_sequence\n"
        "import seegaan.testing.decoders as d, tests.conftest as c\n"
        "i = seegaan.interpolate(c.make_cohort(n=20, seed=1), feature='age', steps=2)\n"
        "plot_sequence(seegaan.sequence(i, d.linear8, n_perm=0).to_dataset())\n"
        "print(matplotlib.rcParams._get_backend_or_none())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.stdout.strip() == "None"
