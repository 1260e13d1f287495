"""Every way a CLI command ends badly is one stderr line and a non-zero exit (issue #12)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from seegaan._internal.errors import SeegaanError
from seegaan.cli._common import OneLineErrors

REPO = Path(__file__).resolve().parents[2]


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _toy_app() -> typer.Typer:
    app = typer.Typer(cls=OneLineErrors, add_completion=False)

    @app.command("boom")
    def boom():
        raise ValueError("boom\nsecond line")

    @app.command("ctrl-c")
    def ctrl_c():
        raise KeyboardInterrupt

    @app.command("abort")
    def abort():
        raise typer.Abort()

    @app.command("bad")
    def bad():
        raise SeegaanError("bad input; do this instead")

    @app.command("count")
    def count(n: int = 1):
        typer.echo(str(n))

    return app


@pytest.mark.parametrize(
    "args, code, fragment",
    [
        (["boom"], 1, "error: internal error (ValueError: boom second line); rerun with SEEGAAN_DEBUG=1"),
        (["ctrl-c"], 130, "error: interrupted"),
        (["abort"], 1, "error: aborted"),
        (["bad"], 2, "error: bad input; do this instead"),
        (["count", "--n", "x"], 2, "error: Invalid value for '--n'"),
        (["count", "--nope"], 2, "error: No such option: --nope"),
    ],
)
def test_each_failure_is_one_line(monkeypatch, args, code, fragment):
    monkeypatch.delenv("SEEGAAN_DEBUG", raising=False)
    res = CliRunner().invoke(_toy_app(), args)
    assert res.exit_code == code, res.output
    assert len(_lines(res.stderr)) == 1 and fragment in res.stderr, res.stderr
    assert "Traceback" not in res.output


def test_debug_shows_the_traceback(monkeypatch):
    monkeypatch.setenv("SEEGAAN_DEBUG", "1")
    res = CliRunner().invoke(_toy_app(), ["boom"])
    assert isinstance(res.exception, ValueError) and "internal error" not in res.stderr


def test_success_still_exits_zero():
    res = CliRunner().invoke(_toy_app(), ["count", "--n", "3"])
    assert res.exit_code == 0 and res.stdout.strip() == "3"


def test_read_only_output_folder_is_one_line(tmp_path):
    from seegaan import demo
    from seegaan.cli.stats import app

    if os.geteuid() == 0:  # root writes anywhere on a normal file system; /proc refuses new files
        out = Path("/proc/self/t1.csv")
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        out = ro / "t1.csv"
    res = CliRunner().invoke(app, ["table1", str(demo.cohort_path()), "--csv", str(out)])
    assert res.exit_code == 2 and len(_lines(res.stderr)) == 1, res.output
    assert "cannot write in the folder" in res.stderr and not res.stdout.strip()


_SCRIPT = textwrap.dedent("""
    import sys, time
    import typer
    from seegaan._internal.io import atomic_path
    from seegaan.cli._common import OneLineErrors

    app = typer.Typer(cls=OneLineErrors, add_completion=False)

    @app.command()
    def run(out: str, during_write: bool = False):
        if during_write:
            with atomic_path(out) as tmp:
                tmp.write_bytes(b"x" * 1000)
                print("ready", flush=True)
                time.sleep(1.0)  # SIGTERM is held back until the write ends, then the .part is removed
        else:
            print("ready", flush=True)
            time.sleep(30)

    @app.command()
    def other():
        pass

    app()
""")


@pytest.mark.parametrize("during_write", [False, True])
def test_sigterm_is_one_line_and_leaves_nothing(tmp_path, during_write):
    script = tmp_path / "cli.py"
    script.write_text(_SCRIPT)
    out = tmp_path / "out.bin"
    args = [sys.executable, str(script), "run", str(out)] + (["--during-write"] if during_write else [])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("SEEGAAN_DEBUG", None)
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "ready"
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert time.monotonic() - t0 < 10
    assert proc.returncode == 128 + signal.SIGTERM
    assert _lines(err) == ["error: terminated by SIGTERM; no output was written"], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cli.py"]
