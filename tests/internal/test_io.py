"""seegaan._internal.io: output checks, atomic writes, leftovers, umask, signals and folder locks (issue #12)."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from seegaan._internal import io as _io
from seegaan._internal.errors import SeegaanError
from seegaan._internal.io import (
    atomic_path,
    check_output_path,
    clean_stale_parts,
    clean_stale_parts_note,
    current_umask,
    folder_lock,
    terminate_cleanly,
)

REPO = Path(__file__).resolve().parents[2]
posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX signals, FIFOs and flock")


def parts(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def spawn(code: str) -> subprocess.Popen:
    """A Python child running ``code``; returns once it printed its first line ('ready ...')."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=str(REPO),
    )
    line = proc.stdout.readline()
    if not line.startswith("ready"):
        proc.kill()
        out, err = proc.communicate(timeout=10)
        raise AssertionError(f"child did not start: {line!r} {out!r} {err!r}")
    return proc


def dead_pid() -> int:
    """The PID of a process that has ended."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def fake_part(
    folder: Path, target: str, pid: int, *, host: str | None = None, size: int = 100, rand: str = "abcd1234"
) -> Path:
    p = folder / f".{target}.{host or _io._writer_token()}.pid{pid}.{rand}.part"
    p.write_bytes(b"x" * size)
    return p


# ------------------------------------------------------------------------------------- check_output_path


def test_check_output_path_existing_behaviour(tmp_path):
    out = tmp_path / "a.nc"
    assert check_output_path(out, overwrite=False) == out
    assert check_output_path(str(out), overwrite=False) == out
    assert not out.exists() and parts(tmp_path) == []  # the probe leaves nothing behind
    out.write_text("x")
    with pytest.raises(SeegaanError, match="already exists; pass --overwrite"):
        check_output_path(out, overwrite=False)
    assert check_output_path(out, overwrite=True) == out
    with pytest.raises(SeegaanError, match="is a directory"):
        check_output_path(tmp_path, overwrite=True)
    with pytest.raises(SeegaanError, match="does not exist; create it first"):
        check_output_path(tmp_path / "nope" / "a.nc", overwrite=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(SeegaanError, match="not a folder"):
        check_output_path(tmp_path / "file" / "a.nc", overwrite=False)


def test_relative_path_in_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert check_output_path("a.nc", overwrite=False) == Path("a.nc")
    with atomic_path("a.nc") as tmp:
        tmp.write_text("ok")
    assert (tmp_path / "a.nc").read_text() == "ok"


def test_suffixes(tmp_path):
    with pytest.raises(SeegaanError, match=r"x\.png: give a \.nc path"):
        check_output_path(tmp_path / "x.png", overwrite=False, suffixes=".nc")
    with pytest.raises(SeegaanError, match=r"give a \.png or \.pdf path"):
        check_output_path(tmp_path / "x.nc", overwrite=False, suffixes=(".png", ".pdf"))
    check_output_path(tmp_path / "x.NC", overwrite=False, suffixes=(".nc",))
    check_output_path(tmp_path / "x.nii.gz", overwrite=False, suffixes=[".nii.gz"])
    with pytest.raises(SeegaanError, match="give a .nc path"):
        with atomic_path(tmp_path / "x.png", suffixes=".nc"):
            pass


@pytest.mark.parametrize("spelling", ["same", "dotdot", "symlink", "hardlink", "symlinked_folder"])
def test_output_never_replaces_an_input(tmp_path, spelling):
    inp = tmp_path / "cohort.nc"
    inp.write_bytes(b"precious")
    (tmp_path / "sub").mkdir()
    if spelling == "same":
        out = inp
    elif spelling == "dotdot":
        out = tmp_path / "sub" / ".." / "cohort.nc"
    elif spelling == "symlink":
        out = tmp_path / "link.nc"
        out.symlink_to(inp)
    elif spelling == "hardlink":
        out = tmp_path / "hard.nc"
        os.link(inp, out)
    else:
        (tmp_path / "alias").symlink_to(tmp_path, target_is_directory=True)
        out = tmp_path / "alias" / "cohort.nc"
    for overwrite in (False, True):
        with pytest.raises(SeegaanError, match="is the input") as err:
            check_output_path(out, overwrite=overwrite, inputs=[inp])
        assert "\n" not in str(err.value) and "another path" in str(err.value)
    # the input given in another spelling too
    with pytest.raises(SeegaanError, match="is the input"):
        check_output_path(inp, overwrite=True, inputs=[str(out)])
    with pytest.raises(SeegaanError, match="is the input"):
        with atomic_path(out, overwrite=True, inputs=[inp]) as tmp:
            tmp.write_bytes(b"clobbered")
    assert inp.read_bytes() == b"precious"


def test_inputs_that_do_not_collide(tmp_path):
    inp = tmp_path / "cohort.nc"
    inp.write_bytes(b"x")
    copy = tmp_path / "copy.nc"
    copy.write_bytes(b"x")  # same content, another file
    check_output_path(copy, overwrite=True, inputs=[inp, None, "demo", tmp_path / "missing.pt", tmp_path])
    check_output_path(tmp_path / "new.nc", overwrite=False, inputs=[inp])


def test_two_outputs_that_are_one_file(tmp_path):
    out = tmp_path / "seq.nc"
    with pytest.raises(SeegaanError, match="are the same file; give each output its own path"):
        check_output_path(out, overwrite=False, others=[out])
    with pytest.raises(SeegaanError, match="same file"):
        check_output_path(tmp_path / "sub" / ".." / "seq.nc", overwrite=False, others=[str(out)])
    out.write_text("x")
    os.link(out, tmp_path / "hard.png")
    with pytest.raises(SeegaanError, match="same file"):
        check_output_path(tmp_path / "hard.png", overwrite=True, others=[out])
    check_output_path(tmp_path / "seq.png", overwrite=False, others=[out, None])


@posix_only
def test_dev_null_is_refused_even_with_overwrite():
    if not os.path.exists("/dev/null"):
        pytest.skip("no /dev/null")
    for overwrite in (False, True):
        with pytest.raises(SeegaanError, match="not a regular file"):
            check_output_path("/dev/null", overwrite=overwrite)
    with pytest.raises(SeegaanError, match="a device, not a regular file"):
        with atomic_path("/dev/null", overwrite=True):
            pass
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)  # still the device


@posix_only
def test_fifo_and_socket_are_refused(tmp_path):
    fifo = tmp_path / "pipe.nc"
    os.mkfifo(fifo)
    with pytest.raises(SeegaanError, match=r"named pipe \(FIFO\), not a regular file"):
        check_output_path(fifo, overwrite=True)
    link = tmp_path / "link.nc"
    link.symlink_to(fifo)
    with pytest.raises(SeegaanError, match="not a regular file"):
        check_output_path(link, overwrite=True)
    short = Path(f"/tmp/sgio{os.getpid()}.sock")  # AF_UNIX paths are short
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(short))
        with pytest.raises(SeegaanError, match="a socket, not a regular file"):
            check_output_path(short, overwrite=True)
    finally:
        sock.close()
        short.unlink(missing_ok=True)


@posix_only
def test_unwritable_folder_real_permissions(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as root: permissions do not stop writing (see the forked-child test)")
        with pytest.raises(SeegaanError, match="cannot write in the folder"):
            check_output_path(ro / "a.nc", overwrite=False)
    finally:
        ro.chmod(0o700)


@posix_only
@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to drop to nobody")
@pytest.mark.parametrize("case", ["readonly_folder", "unreachable_folder"])
def test_unwritable_folder_as_an_unprivileged_child(tmp_path, case):
    """As root, fork a child that drops to uid/gid 65534 and checks an output in a root-owned folder."""
    import shutil
    import tempfile

    top = Path(tempfile.mkdtemp(prefix="sgio", dir="/tmp" if os.path.isdir("/tmp") else None))
    try:
        top.chmod(0o755 if case == "readonly_folder" else 0o700)
        folder = top / "out"
        folder.mkdir()
        folder.chmod(0o755)
        pid = os.fork()
        if pid == 0:  # child: never return into pytest
            code = 3
            try:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
                try:
                    check_output_path(folder / "a.nc", overwrite=False)
                    code = 1
                except SeegaanError as exc:
                    ok = str(exc) == f"cannot write in the folder {folder} (permission denied); choose another folder"
                    code = 0 if ok else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 0
        assert list(folder.iterdir()) == []
    finally:
        shutil.rmtree(top)


def test_probe_catches_what_os_access_misses(tmp_path, monkeypatch):
    """A read-only file system or full quota: os.access says yes, creating the probe file fails."""
    import errno
    import tempfile

    def refuse(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(SeegaanError, match=r"cannot write in the folder .* \(Read-only file system\)"):
        check_output_path(tmp_path / "a.nc", overwrite=False)
    with pytest.raises(SeegaanError, match="cannot write in the folder"):
        with atomic_path(tmp_path / "a.nc"):
            pass
    check_output_path(tmp_path / "a.nc", overwrite=False, probe=False)  # probe off: no file created


def test_check_is_cheap_and_up_front(tmp_path):
    t0 = time.perf_counter()
    for i in range(200):
        check_output_path(tmp_path / f"o{i}.nc", overwrite=False, inputs=[tmp_path], suffixes=".nc")
    assert time.perf_counter() - t0 < 5
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------- atomic_path


def test_atomic_path_writes_and_replaces(tmp_path):
    out = tmp_path / "a.bin"
    with atomic_path(out) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".a.bin.") and tmp.name.endswith(".part")
        assert f".pid{os.getpid()}." in tmp.name
        tmp.write_bytes(b"one")
        assert not out.exists()
    assert out.read_bytes() == b"one" and parts(tmp_path) == []
    with atomic_path(out, overwrite=True) as tmp:
        tmp.write_bytes(b"two")
    assert out.read_bytes() == b"two"


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt(), SystemExit(143)])
def test_atomic_path_removes_temp_on_exceptions(tmp_path, exc):
    out = tmp_path / "a.bin"
    out.write_bytes(b"old")
    with pytest.raises(type(exc)):
        with atomic_path(out, overwrite=True) as tmp:
            tmp.write_bytes(b"half")
            raise exc
    assert out.read_bytes() == b"old" and parts(tmp_path) == []


def test_long_target_names(tmp_path):
    out = tmp_path / ("n" * 240 + ".nc")
    with atomic_path(out) as tmp:
        assert len(tmp.name) < 255
        tmp.write_bytes(b"x")
    assert out.read_bytes() == b"x"


@posix_only
@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077, 0o002])
def test_outputs_honour_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        assert current_umask() == umask
        assert current_umask() == umask  # reading it does not change it
        out = tmp_path / "a.bin"
        with atomic_path(out) as tmp:
            tmp.write_bytes(b"x")
        assert stat.S_IMODE(os.stat(out).st_mode) == 0o666 & ~umask
    finally:
        os.umask(old)


# ----------------------------------------------------------------------------------------------- signals

WRITER = """
    import os, sys, time
    from seegaan._internal.io import atomic_path, terminate_cleanly
    target = sys.argv[1] if len(sys.argv) > 1 else {target!r}
    ctx = terminate_cleanly() if {clean} else __import__("contextlib").nullcontext()
    with ctx:
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as fh:
                fh.write(b"x" * 100000)
                fh.flush()
                print("ready", tmp, flush=True)
                time.sleep({sleep})
                fh.write(b"end")
    print("wrote", target, flush=True)
"""


@posix_only
@pytest.mark.parametrize(
    "clean, sig, code",
    [
        (True, "SIGTERM", 128 + signal.SIGTERM),  # terminate_cleanly: Terminated once the write has ended
        (False, "SIGINT", -signal.SIGINT),  # KeyboardInterrupt once the write has ended (uncaught: killed by SIGINT)
        (False, "SIGTERM", -signal.SIGTERM),  # the default action, after the temporary file is removed
    ],
)
def test_a_signal_during_the_write_removes_the_temp(tmp_path, clean, sig, code):
    out = tmp_path / "model.pt"
    proc = spawn(WRITER.format(target=str(out), clean=clean, sleep=1.0))
    assert len(parts(tmp_path)) == 1
    proc.send_signal(getattr(signal, sig))  # held back until the write ends (1 s)
    assert proc.wait(timeout=20) == code
    assert ("KeyboardInterrupt" in proc.stderr.read()) == (sig == "SIGINT")
    assert not out.exists() and parts(tmp_path) == []


@posix_only
@pytest.mark.parametrize("clean", [False, True])
def test_a_second_sigint_or_sigterm_stops_at_once(tmp_path, clean):
    out = tmp_path / "model.pt"
    proc = spawn(WRITER.format(target=str(out), clean=clean, sleep=60))
    sig = signal.SIGTERM if clean else signal.SIGINT
    t0 = time.monotonic()
    proc.send_signal(sig)
    time.sleep(0.3)
    proc.send_signal(sig)
    code = proc.wait(timeout=20)
    assert time.monotonic() - t0 < 10 and code != 0
    assert not out.exists() and parts(tmp_path) == []


def test_sigint_in_the_body_is_held_back_until_the_write_ends(tmp_path):
    out = tmp_path / "a.bin"
    finished = []
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(out) as tmp:
            tmp.write_bytes(b"half")
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # a Python handler runs here: it must not raise
            tmp.write_bytes(b"whole")
            finished.append(True)
    assert finished and not out.exists() and parts(tmp_path) == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_handler_that_returns_lets_the_write_complete(tmp_path):
    """A stop-flag handler (as training installs) sees the signal after the write, which completes."""
    seen = []
    old = signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))
    try:
        with atomic_path(tmp_path / "a.bin") as tmp:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            assert seen == []
            tmp.write_bytes(b"whole")
        assert seen == [signal.SIGINT] and (tmp_path / "a.bin").read_bytes() == b"whole"
    finally:
        signal.signal(signal.SIGINT, old)


NETCDF_WRITER = """
    import sys
    import numpy as np
    import xarray as xr
    from seegaan._internal.io import atomic_path
    ds = xr.Dataset({{"a": (("x", "y"), np.random.default_rng(0).standard_normal((2000, 2500)))}})
    with atomic_path({target!r}) as tmp:
        print("ready", flush=True)
        ds.to_netcdf(tmp, engine="netcdf4")
"""


@posix_only
def test_ctrl_c_during_a_netcdf_write_exits_promptly_and_leaves_nothing(tmp_path):
    """Ctrl-C in the middle of an HDF5 write used to hang on the netCDF4 file lock."""
    out = tmp_path / "cohort.nc"
    proc = spawn(NETCDF_WRITER.format(target=str(out)))
    time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert "KeyboardInterrupt" in proc.stderr.read()
    assert not out.exists() and parts(tmp_path) == []


@posix_only
@pytest.mark.parametrize("sig", ["SIGKILL"])
def test_uncaught_kill_leaves_a_part_that_the_next_write_removes(tmp_path, sig):
    """SIGKILL cannot clean up; the next atomic_path does."""
    out = tmp_path / "cohort.nc"
    other = tmp_path / "other.nc"
    proc = spawn(WRITER.format(target=str(out), clean=False, sleep=60))
    os.kill(proc.pid, getattr(signal, sig))
    proc.wait(timeout=20)
    left = parts(tmp_path)
    assert not out.exists() and len(left) == 1 and f".pid{proc.pid}." in left[0]
    with atomic_path(other) as tmp:  # another target's write leaves it alone
        tmp.write_bytes(b"o")
    assert parts(tmp_path) == left
    with atomic_path(out) as tmp:
        tmp.write_bytes(b"new")
    assert out.read_bytes() == b"new" and parts(tmp_path) == []


@posix_only
def test_live_writer_part_is_kept(tmp_path):
    out = tmp_path / "cohort.nc"
    proc = spawn(WRITER.format(target=str(out), clean=True, sleep=60))
    try:
        assert clean_stale_parts(out) == 0
        assert clean_stale_parts(tmp_path, older_than_s=0) == 0  # alive on this host: never removed
        assert len(parts(tmp_path)) == 1
    finally:
        proc.send_signal(signal.SIGTERM)  # held back during the write; the second one stops it at once
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    assert parts(tmp_path) == []


@posix_only
def test_terminate_cleanly_restores_handlers_and_ignores_a_second_signal():
    before = signal.getsignal(signal.SIGTERM)
    cleaned = []
    with pytest.raises(_io.Terminated) as err:
        with terminate_cleanly():
            assert signal.getsignal(signal.SIGTERM) is not before
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)  # the handler raises before this ends
            finally:
                os.kill(os.getpid(), signal.SIGTERM)  # a second signal during clean-up is ignored
                time.sleep(0.05)
                cleaned.append(True)
    assert err.value.code == 143 and err.value.signum == signal.SIGTERM and cleaned
    assert isinstance(err.value, SystemExit)
    assert signal.getsignal(signal.SIGTERM) is before


def test_terminate_cleanly_outside_the_main_thread_is_a_no_op():
    import threading

    seen = []

    def run():
        with terminate_cleanly():
            seen.append(True)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    assert seen == [True]


# ------------------------------------------------------------------------------------------ stale parts


@posix_only
def test_clean_stale_parts_by_pid_and_age(tmp_path):
    target = tmp_path / "cohort.nc"
    gone = dead_pid()
    dead = fake_part(tmp_path, "cohort.nc", gone, size=1000)
    mine = fake_part(tmp_path, "cohort.nc", os.getpid(), size=10, rand="mine0000")  # maybe another thread's
    other_target = fake_part(tmp_path, "other.nc", gone, size=7)
    far = fake_part(tmp_path, "cohort.nc", gone, host="elsewhere", size=5, rand="far00000")
    legacy = tmp_path / ".cohort.nc.k2j3h4g5.part"  # written by an older seegaan: no PID
    legacy.write_bytes(b"y" * 50)
    unrelated = [tmp_path / "cohort.nc.part", tmp_path / ".hidden", tmp_path / "notes.txt"]
    for p in unrelated:
        p.write_text("keep")
    assert clean_stale_parts(target) == 1000
    assert not dead.exists() and mine.exists() and other_target.exists() and far.exists() and legacy.exists()
    old = time.time() - 2 * 24 * 3600
    os.utime(far, (old, old))
    os.utime(legacy, (old, old))
    assert clean_stale_parts(target) == 55
    assert clean_stale_parts(target, older_than_s=None) == 0
    assert clean_stale_parts(tmp_path) == 7  # a folder: every seegaan part
    assert mine.exists() and all(p.exists() for p in unrelated)


@posix_only
def test_reused_pid_counts_as_dead(tmp_path):
    """A live PID whose process started after the part was last written is not its writer."""
    proc = spawn("import time; print('ready', flush=True); time.sleep(60)")
    try:
        part = fake_part(tmp_path, "a.nc", proc.pid, size=3)
        assert clean_stale_parts(tmp_path / "a.nc", older_than_s=None) == 0
        if _io._process_start(proc.pid) is None:
            pytest.skip("no /proc process start times here")
        old = time.time() - 3600
        os.utime(part, (old, old))
        assert clean_stale_parts(tmp_path / "a.nc", older_than_s=None) == 3
    finally:
        proc.kill()
        proc.wait()


def test_clean_stale_parts_note(tmp_path):
    target = tmp_path / "m.pt"
    assert clean_stale_parts_note(target) is None
    fake_part(tmp_path, "m.pt", dead_pid(), size=121_000_000 // 1000)
    note = clean_stale_parts_note(target)
    assert note is not None and "121.0 kB" in note and str(tmp_path) in note and "\n" not in note
    assert clean_stale_parts(tmp_path / "missing-folder" / "x") == 0


def test_symlinked_part_is_not_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep")
    link = tmp_path / f".x.nc.{_io._writer_token()}.pid{dead_pid()}.abcd1234.part"
    link.symlink_to(victim)
    assert clean_stale_parts(tmp_path / "x.nc") == 0
    assert victim.read_text() == "keep" and link.is_symlink()


# ------------------------------------------------------------------------------------------- folder_lock

LOCKER = """
    import time
    from seegaan._internal.io import folder_lock
    with folder_lock({folder!r}):
        print("ready", flush=True)
        time.sleep(60)
"""


@posix_only
def test_folder_lock_held_by_a_child_and_freed_when_it_is_killed(tmp_path):
    proc = spawn(LOCKER.format(folder=str(tmp_path)))
    try:
        with pytest.raises(SeegaanError) as err:
            with folder_lock(tmp_path):
                pass
        msg = str(err.value)
        assert msg == (
            f"another seegaan process (pid {proc.pid}) is writing to {tmp_path}; wait for it or choose another folder"
        )
    finally:
        proc.kill()
        proc.wait()
    with folder_lock(tmp_path) as lock:  # the OS released the dead child's lock
        assert lock == tmp_path / ".seegaan.lock"
        assert lock.read_text().split()[0] == str(os.getpid())
    assert not (tmp_path / ".seegaan.lock").exists()


@posix_only
def test_folder_lock_in_one_process(tmp_path):
    with folder_lock(tmp_path):
        with pytest.raises(SeegaanError, match=f"another seegaan process \\(pid {os.getpid()}\\)"):
            with folder_lock(tmp_path):
                pass
    with folder_lock(tmp_path):  # released on exit
        pass
    with pytest.raises(RuntimeError):
        with folder_lock(tmp_path):
            raise RuntimeError("x")
    with folder_lock(str(tmp_path)):  # released after an exception too
        pass
    with pytest.raises(SeegaanError, match="does not exist; create it first"):
        with folder_lock(tmp_path / "nope"):
            pass
    (tmp_path / "f").write_text("x")
    with pytest.raises(SeegaanError, match="not a folder"):
        with folder_lock(tmp_path / "f"):
            pass


@posix_only
def test_folder_lock_taken_by_the_next_process_after_a_normal_exit(tmp_path):
    proc = spawn(LOCKER.format(folder=str(tmp_path)).replace("time.sleep(60)", "time.sleep(0.5)"))
    assert proc.wait(timeout=20) == 0
    with folder_lock(tmp_path):
        pass


def test_atomic_paths_a_signal_while_the_second_file_is_written_drops_both(tmp_path):
    """Two outputs of one command (netCDF + figure): Ctrl-C during the second write leaves neither."""
    from seegaan._internal.io import atomic_paths

    with pytest.raises(KeyboardInterrupt):
        with atomic_paths([tmp_path / "a.nc", tmp_path / "a.png"]) as (first, second):
            first.write_bytes(b"netcdf")
            os.kill(os.getpid(), signal.SIGINT)  # held back until both are written
            second.write_bytes(b"png")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_atomic_paths_writes_all_or_refuses_up_front(tmp_path):
    from seegaan._internal.io import atomic_paths

    with atomic_paths([tmp_path / "a.nc", None, tmp_path / "a.png"], suffixes=[".nc", None, ".png"]) as temps:
        assert temps[1] is None
        temps[0].write_bytes(b"1")
        temps[2].write_bytes(b"2")
    assert (tmp_path / "a.nc").read_bytes() == b"1" and (tmp_path / "a.png").read_bytes() == b"2"
    with pytest.raises(SeegaanError, match="already exists"):
        with atomic_paths([tmp_path / "b.nc", tmp_path / "a.png"]):
            pass
    assert not (tmp_path / "b.nc").exists()
    with pytest.raises(SeegaanError):
        with atomic_paths([tmp_path / "c.nc", tmp_path / "c.nc"]):  # two outputs, one file
            pass


def test_atomic_paths_a_failed_second_rename_takes_back_the_first_file(tmp_path, monkeypatch):
    from seegaan._internal.io import atomic_paths

    real_replace = os.replace

    def replace(src, dst):
        if str(dst).endswith(".png"):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError):
        with atomic_paths([tmp_path / "a.nc", tmp_path / "a.png"]) as (first, second):
            first.write_bytes(b"1")
            second.write_bytes(b"2")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
