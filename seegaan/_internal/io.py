"""Safe file output: checks up front, atomic writes, leftover clean-up, folder locks, clean termination.

* :func:`check_output_path` -- cheap checks to call *before any expensive work*: refuses an output that
  is one of the command's inputs (symlinks, ``..`` and hard links resolved), two outputs that are one
  file, a wrong suffix, a special file (``/dev/null``, a FIFO, a socket, a device), a directory, an
  existing file without ``overwrite``, and a folder that is missing or not writable.
* :func:`atomic_path` -- write to a hidden temporary ``.NAME.pidPID.XXXXXXXX.part`` beside the target,
  then ``os.replace`` it onto the target; on any exception (KeyboardInterrupt, and SIGTERM inside
  :func:`terminate_cleanly`, included) the temporary file is removed and the target is untouched.
  Ctrl-C (and SIGTERM/SIGHUP) during the write is deferred to its end, so that no writer (netCDF4/HDF5
  holds a file lock) is torn down half-way; a second Ctrl-C interrupts at once.
  The output gets the usual ``0o666 & ~umask`` permissions, not ``mkstemp``'s 0600.
* :func:`clean_stale_parts` -- remove the ``.part`` leftovers of writers that died (SIGKILL, power
  loss); :func:`atomic_path` does it for its own target before writing.
* :func:`folder_lock` -- an exclusive, non-blocking lock on an output folder (``DIR/.seegaan.lock``).
* :func:`terminate_cleanly` -- turn SIGTERM/SIGHUP into :class:`Terminated` (a ``SystemExit``) so the
  clean-up above runs when a job scheduler or ``kill`` stops the process.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import signal
import socket
import stat
import tempfile
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import xarray as xr

from seegaan._internal.errors import SeegaanError

__all__ = [
    "check_output_path",
    "atomic_path",
    "clean_stale_parts",
    "clean_stale_parts_note",
    "folder_lock",
    "terminate_cleanly",
    "Terminated",
    "file_sha256",
    "current_umask",
    "LOCK_NAME",
]

#: The lock file :func:`folder_lock` keeps in a folder while it is held.
LOCK_NAME = ".seegaan.lock"

#: Default age (seconds) after which a ``.part`` whose writer cannot be checked (another host, an older
#: seegaan that did not record its PID) counts as a leftover.
STALE_AFTER_S = 24 * 3600.0

# mkstemp's random part: 8 characters from this alphabet.
_RAND = r"[a-z0-9_]{8}"
_PART_RE = re.compile(r"^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9-]{1,32})\.pid(?P<pid>\d{1,10})\." + _RAND + r"\.part$")
_LEGACY_RE = re.compile(r"^\.(?P<name>.+)\." + _RAND + r"\.part$")
_MAX_NAME_IN_PART = 150  # keep the temporary name under NAME_MAX (255 bytes) for long target names
_PROBE_NAME = "seegaan-probe"
_NO_WRITE_ERRNOS = {getattr(errno, n) for n in ("EACCES", "EPERM", "EROFS", "ENOSPC", "EDQUOT") if hasattr(errno, n)}
_PID_MARGIN_S = 120.0  # clock slack when deciding that a live PID is a newer process (PID reuse)


# --------------------------------------------------------------------------------------------- helpers


def _host() -> str:
    """This machine's name (letters, digits and '-', at most 23 characters)."""
    name = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname().split(".")[0])[:23]
    return name or "host"


def _writer_token() -> str:
    """Who may check a part's PID: this machine's name and its PID namespace (containers sharing a host name).

    At most 32 characters of ``[A-Za-z0-9-]``; put in every temporary file name.
    """
    try:
        ns = os.readlink("/proc/self/ns/pid")
    except OSError:
        return _host()
    return f"{_host()}-{zlib.crc32(ns.encode()):08x}"


def _part_stem(name: str) -> str:
    return name[:_MAX_NAME_IN_PART]


def current_umask() -> int:
    """The process umask, read from ``/proc/self/status`` where present (else set and restored at once)."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    with _UMASK_LOCK:
        old = os.umask(0o022)
        os.umask(old)
    return old


_UMASK_LOCK = threading.Lock()


def _same_file(a: Path, b: Path) -> bool:
    """True when ``a`` and ``b`` name one file: the same resolved path, or (both existing) one inode."""
    if os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b)):
        return True
    try:
        return os.path.samestat(os.stat(a), os.stat(b))
    except (OSError, ValueError):
        return False


#: what a folder of radiographs is scanned for (``seegaan.data.images.IMAGE_EXTENSIONS``; a test keeps them
#: equal): an output with one of these suffixes may not be written inside an input folder
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".dicom", ".dic", ".npy")


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` (which may not exist yet) lies in ``folder`` or below, whatever the spelling."""
    try:
        target = Path(os.path.realpath(path))
        root = Path(os.path.realpath(folder))
    except OSError:
        return False
    return root == target.parent or root in target.parents


def _describe_special(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def _probe_writable(folder: Path) -> None:
    """Raise SeegaanError unless a file can be created (and removed) in ``folder``."""
    shown = folder if str(folder) else Path(".")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SeegaanError(f"cannot write in the folder {shown} (permission denied); choose another folder")
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=f".{_PROBE_NAME}.{_writer_token()}.pid{os.getpid()}.", suffix=".part", dir=folder
        )
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SeegaanError(f"cannot write in the folder {shown} ({reason}); choose another folder") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(tmp)


# ------------------------------------------------------------------------------------ check_output_path


def check_output_path(
    path: str | os.PathLike,
    *,
    overwrite: bool,
    inputs: Iterable = (),
    suffixes: str | Iterable[str] | None = None,
    others: Iterable = (),
    probe: bool = True,
) -> Path:
    """Check an output path up front (cheap: a few ``stat`` calls and one empty probe file); return it as a Path.

    Parameters
    ----------
    path : path
        The output file.
    overwrite : bool
        Whether an existing regular file may be replaced.
    inputs : paths, optional
        The command's input files (None and paths that do not exist are ignored): the output may not be
        any of them, whatever the spelling (symlinks, ``..``, hard links) -- even with ``overwrite``.
    suffixes : str or strs, optional
        Accepted endings (case-insensitive), e.g. ``".nc"`` or ``(".png", ".pdf")``.
    others : paths, optional
        The command's other outputs (None ignored): ``path`` may not be the same file as any of them.
    probe : bool
        Also create and remove an empty hidden file in the folder, to be sure it is writable.

    Raises
    ------
    SeegaanError
        With one line that says what to do.
    """
    path = Path(path)
    if suffixes is not None:
        wanted = [suffixes] if isinstance(suffixes, str) else list(suffixes)
        if wanted and not any(path.name.lower().endswith(s.lower()) for s in wanted):
            raise SeegaanError(f"{path}: give a {' or '.join(wanted)} path")
    parent = path.parent if str(path.parent) else Path(".")
    try:
        st = os.stat(path)  # follows symlinks: what the output would replace
    except (FileNotFoundError, NotADirectoryError):
        st = None
    except PermissionError:
        raise SeegaanError(f"cannot write in the folder {parent} (permission denied); choose another folder") from None
    except OSError as exc:
        raise SeegaanError(f"cannot use {path} as an output ({exc.strerror}); choose another path") from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise SeegaanError(f"{path} is a directory; give a file name")
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise SeegaanError(
            f"{path} is {_describe_special(st.st_mode)}, not a regular file; give the path of a regular file"
        )
    for inp in inputs or ():
        if inp is None or not os.path.exists(inp):
            continue
        if os.path.isdir(inp):
            if path.suffix.lower() in IMAGE_SUFFIXES and _inside(path, Path(inp)):
                raise SeegaanError(
                    f"{path} is inside {inp}, a folder this command reads images from: a {path.suffix} file "
                    f"there would be read as a radiograph next time; write it outside {inp}"
                )
            continue
        if _same_file(path, Path(inp)):
            raise SeegaanError(f"the output {path} is the input {inp}; write the output to another path")
    for other in others or ():
        if other is not None and _same_file(path, Path(other)):
            raise SeegaanError(f"the outputs {path} and {other} are the same file; give each output its own path")
    if st is not None and not overwrite:
        raise SeegaanError(f"{path} already exists; pass --overwrite (overwrite=True) to replace it")
    try:
        pst = os.stat(parent)
    except (FileNotFoundError, NotADirectoryError):
        pst = None
    except PermissionError:
        raise SeegaanError(f"cannot write in the folder {parent} (permission denied); choose another folder") from None
    except OSError as exc:
        raise SeegaanError(f"cannot use the folder {parent} ({exc.strerror}); choose another folder") from None
    if pst is None:
        raise SeegaanError(f"the folder {parent} does not exist; create it first")
    if not stat.S_ISDIR(pst.st_mode):
        raise SeegaanError(f"{parent} is not a folder; give a path in an existing folder")
    if probe:
        _probe_writable(parent)
    return path


# ---------------------------------------------------------------------------------------- stale parts


def _pid_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # PermissionError: alive, another user's
    return True


def _process_start(pid: int) -> float | None:
    """Epoch seconds at which ``pid`` started (Linux /proc), or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        ticks = int(fields[19])  # field 22 (starttime); fields[0] is field 3 (state)
        with open("/proc/stat", encoding="ascii") as fh:
            btime = next(int(line.split()[1]) for line in fh if line.startswith("btime"))
        return btime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _writer_dead(pid: int, mtime: float) -> bool:
    """True when the process that wrote a part (PID ``pid``, last written at ``mtime``) has ended."""
    if pid == os.getpid():
        return False  # maybe another thread of ours is writing it
    if not _pid_alive(pid):
        return True
    start = _process_start(pid)  # a live PID that started after the part was written: a reused PID
    return start is not None and start > mtime + _PID_MARGIN_S


def _stale(entry: os.DirEntry, m: re.Match, older_than_s: float | None, now: float) -> int | None:
    """The size of a stale part (to remove), or None to keep it."""
    try:
        st = entry.stat(follow_symlinks=False)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    old = older_than_s is not None and now - st.st_mtime > older_than_s
    pid = m.groupdict().get("pid")
    if pid is not None and m.group("host") == _writer_token():
        if _writer_dead(int(pid), st.st_mtime):
            return st.st_size
        return None  # a live writer on this machine: never touch it
    return st.st_size if old else None


def clean_stale_parts(path: str | os.PathLike, *, older_than_s: float | None = STALE_AFTER_S) -> int:
    """Remove hidden ``.part`` leftovers of interrupted writes; return the number of bytes removed.

    ``path`` is an output file (its own leftovers ``.NAME.*.part`` beside it are looked at) or a folder
    (all of its seegaan ``.part`` files). A part written on this machine is removed when its writer's PID
    is no longer alive (or now belongs to a process started after the part was written); a part from
    another machine (or another container's PID namespace), or from an older seegaan that did not put
    its PID in the name, is removed when it was last modified more than ``older_than_s`` seconds ago
    (None: never). Parts of live writers are kept. Never raises for files it cannot look at or remove.
    """
    path = Path(path)
    if path.is_dir():
        folder, name = path, None
    else:
        folder, name = (path.parent if str(path.parent) else Path(".")), path.name
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    now = time.time()
    removed = 0
    stem = None if name is None else _part_stem(name)
    for entry in entries:
        fname = entry.name
        if not (fname.startswith(".") and fname.endswith(".part")):
            continue
        m = _PART_RE.match(fname)
        if m is not None:
            if stem is not None and m.group("name") != stem:
                continue
        else:
            m = _LEGACY_RE.match(fname)
            if m is None or (stem is not None and m.group("name") != name):
                continue
        size = _stale(entry, m, older_than_s, now)
        if size is None:
            continue
        try:
            os.unlink(entry.path)
        except OSError:
            continue
        removed += size
    return removed


def _format_bytes(n: int) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


def clean_stale_parts_note(path: str | os.PathLike, *, older_than_s: float | None = STALE_AFTER_S) -> str | None:
    """:func:`clean_stale_parts`, returning a one-line note for the user when anything was removed."""
    n = clean_stale_parts(path, older_than_s=older_than_s)
    if not n:
        return None
    where = path if Path(path).is_dir() else (Path(path).parent if str(Path(path).parent) else Path("."))
    return f"removed {_format_bytes(n)} of partial files left in {where} by an interrupted earlier run"


# ---------------------------------------------------------------------------------------- atomic_path


class _DeferSignals:
    """Hold back SIGINT/SIGTERM/SIGHUP while a file is written; hand them on once the write has ended.

    Each signal that arrives is recorded and the write goes on. A second arrival of the same signal is
    handed on at once (the user insists). Signals whose handler is ``SIG_IGN`` are left alone. Only in the
    main thread (elsewhere handlers cannot be set; Python runs them in the main thread anyway).
    """

    def __init__(self):
        self.pending: list[int] = []
        self.previous: dict = {}
        self._saved: dict = {}

    def _handler(self, signum, frame):
        self.pending.append(signum)
        if self.pending.count(signum) >= 2:
            self.restore()
            self.pending = []
            for _ in range(2):  # both arrivals, so a handler that stops on the second one does
                self._hand_on(signum, frame, cleanup=None)
            raise KeyboardInterrupt if signum == signal.SIGINT else Terminated(signum)

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for name in ("SIGINT", "SIGTERM", "SIGHUP"):
            s = getattr(signal, name, None)
            if s is None:
                continue
            with contextlib.suppress(ValueError, OSError, TypeError):
                old = signal.getsignal(s)
                if old is signal.SIG_IGN:
                    continue
                signal.signal(s, self._handler)
                self.previous[s] = old
        self._saved = dict(self.previous)

    def restore(self) -> None:
        for s, old in self.previous.items():
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(s, old if old is not None else signal.SIG_DFL)
        self.previous = {}

    def _hand_on(self, signum: int, frame, cleanup) -> None:
        """Run the handler that was in place before (it may raise); the default action ends the process."""
        old = self._saved.get(signum)
        if callable(old):
            old(signum, frame)  # Python's SIGINT handler raises KeyboardInterrupt
            return
        if cleanup is not None:
            cleanup()
        signal.raise_signal(signum)  # SIG_DFL: the process ends as it would have
        raise KeyboardInterrupt if signum == signal.SIGINT else Terminated(signum)

    def deliver(self, cleanup) -> None:
        """Restore the handlers, then hand on every held-back signal (first arrivals, in order).

        ``cleanup`` runs before a default action ends the process. A handler that returns (e.g. one that
        only asks a loop to stop) lets the write complete.
        """
        self.restore()
        pending, self.pending = list(dict.fromkeys(self.pending)), []
        for signum in pending:
            self._hand_on(signum, None, cleanup)


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    inputs: Iterable = (),
    suffixes: str | Iterable[str] | None = None,
    others: Iterable = (),
) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``path`` only on success.

    The checks of :func:`check_output_path` run first (``inputs``, ``suffixes`` and ``others`` are passed
    on), then the leftovers of dead writers of this target are removed (:func:`clean_stale_parts`). The
    temporary file is ``.NAME.HOST-NS.pidPID.XXXXXXXX.part`` (NS: a hash of the PID namespace). On
    success it gets ``0o666 & ~umask`` permissions and replaces ``path``. On any exception
    (KeyboardInterrupt, and SystemExit from :func:`terminate_cleanly`'s SIGTERM handler, included) the
    temporary file is removed, ``path`` is left untouched, and the exception propagates. SIGKILL cannot
    be caught: its ``.part`` is removed by the next write of the same target (or
    :func:`clean_stale_parts`).

    Signals during the write (main thread only): SIGINT, SIGTERM and SIGHUP that arrive while the body
    runs are held back until it returns, because interrupting a writer half-way can leave it stuck
    (netCDF4/HDF5 keeps a file lock that a KeyboardInterrupt in the middle of a write never releases: the
    process hangs). Then, before the rename, the handler that was in place gets the signal: Python's
    Ctrl-C handler raises KeyboardInterrupt, :func:`terminate_cleanly`'s raises :class:`Terminated`, and
    the temporary file is removed with ``path`` untouched; under the default action (SIGTERM without
    :func:`terminate_cleanly`) the temporary file is removed and the process ends; a handler that returns
    (one that only asks a loop to stop, as training does) lets the write complete. A second Ctrl-C (or a
    second SIGTERM) during the write is handed on at once. Keep the body to the write itself: a long
    computation inside it would not be interruptible by one Ctrl-C.
    """
    path = check_output_path(path, overwrite=overwrite, inputs=inputs, suffixes=suffixes, others=others, probe=False)
    with _atomic([path]) as (tmp_path,):
        yield tmp_path


@contextlib.contextmanager
def atomic_paths(
    paths: Iterable, *, overwrite: bool = False, inputs: Iterable = (), suffixes: Iterable | None = None
) -> Iterator[list[Path | None]]:
    """Several outputs of one command written together: every file or none.

    Yields one temporary path per entry of ``paths`` (``None`` stays ``None``). Each target is checked as
    :func:`atomic_path` checks it (``suffixes``: one entry per path; the outputs may not be each other).
    The temporary files are renamed onto their targets only after the body has returned and held-back
    signals have acted, all under one deferral of SIGINT/SIGTERM/SIGHUP, so a Ctrl-C during the write of
    the second file also drops the first. (Nested :func:`atomic_path` blocks cannot do this: the inner one
    would rename its file before the outer one hands the signal on.)
    """
    paths = list(paths)
    suffixes = list(suffixes) if suffixes is not None else [None] * len(paths)
    given = [p for p in paths if p is not None]
    targets = [
        None
        if p is None
        else check_output_path(
            p, overwrite=overwrite, inputs=inputs, suffixes=suffix, others=[q for q in given if q is not p], probe=False
        )
        for p, suffix in zip(paths, suffixes)
    ]
    with _atomic([t for t in targets if t is not None]) as temps:
        it = iter(temps)
        yield [None if t is None else next(it) for t in targets]


@contextlib.contextmanager
def _atomic(targets: list[Path]) -> Iterator[list[Path]]:
    """Temporary files beside checked ``targets``; renamed together on success, removed otherwise."""
    temps: list[Path] = []
    created: list[Path] = []  # targets that did not exist before this block renamed onto them
    defer = _DeferSignals()
    try:
        for path in targets:
            clean_stale_parts(path)
            folder = path.parent if str(path.parent) else Path(".")
            try:
                fd, tmp = tempfile.mkstemp(
                    prefix=f".{_part_stem(path.name)}.{_writer_token()}.pid{os.getpid()}.", suffix=".part", dir=folder
                )
            except OSError as exc:
                if exc.errno not in _NO_WRITE_ERRNOS:
                    raise
                raise SeegaanError(
                    f"cannot write in the folder {folder} ({exc.strerror}); choose another folder"
                ) from None
            temps.append(Path(tmp))
            os.close(fd)
        defer.install()
        yield list(temps)
        # held-back signals act now, before any rename: an exception they raise drops every output below
        defer.deliver(cleanup=lambda: [_unlink(t) for t in temps])
        mode = 0o666 & ~current_umask()
        for tmp_path in temps:
            with contextlib.suppress(FileNotFoundError):
                os.chmod(tmp_path, mode)
        for tmp_path, path in zip(temps, targets):
            existed = os.path.lexists(path)
            os.replace(tmp_path, path)
            if not existed:
                created.append(path)
    except BaseException:
        defer.restore()
        for tmp_path in temps:
            _unlink(tmp_path)
        for path in created:  # all or none: a failed later rename takes back the files this block created
            _unlink(path)
        if defer.pending:  # a signal held back while the body failed: it acts after the clean-up
            defer.deliver(cleanup=None)
        raise


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


# ---------------------------------------------------------------------------------------- folder_lock


def _read_owner(fd: int) -> str:
    with contextlib.suppress(OSError, UnicodeDecodeError):
        text = os.pread(fd, 200, 0).decode("ascii").split()
        if text and text[0].isdigit():
            pid = text[0]
            host = text[1] if len(text) > 1 else ""
            return f"pid {pid}" + (f" on {host}" if host and host != _host() else "")
    return "pid unknown"


@contextlib.contextmanager
def folder_lock(path: str | os.PathLike) -> Iterator[Path]:
    """Hold an exclusive lock on the output folder ``path`` while the block runs; yield the lock file.

    The lock is ``fcntl.flock`` on ``path/.seegaan.lock`` (which holds the owner's PID and host), taken
    without waiting: when another process holds it, raise ``SeegaanError("another seegaan process (pid
    N) is writing to DIR; ...")``. It is released (and the lock file removed) on exit, and by the
    operating system if the process dies. The folder must exist. On a file system without ``flock``
    (some network mounts) and on Windows the block runs without a lock.
    """
    folder = Path(path)
    if not folder.is_dir():
        if folder.exists():
            raise SeegaanError(f"{folder} is not a folder; give an output folder")
        raise SeegaanError(f"the folder {folder} does not exist; create it first")
    lock_path = folder / LOCK_NAME
    try:
        import fcntl  # deferred: fcntl (POSIX only)
    except ImportError:  # pragma: no cover - Windows
        yield lock_path
        return
    fd = None
    for _ in range(20):  # retry when the holder removed the lock file between our open and our lock
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise SeegaanError(f"cannot write in the folder {folder} ({exc.strerror}); choose another folder") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _read_owner(fd)
            os.close(fd)
            raise SeegaanError(
                f"another seegaan process ({owner}) is writing to {folder}; wait for it or choose another folder"
            ) from None
        except OSError as exc:
            if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                os.close(fd)
                fd = None
                break  # no locking on this file system
            os.close(fd)
            raise
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock_path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
        fd = None
    else:  # pragma: no cover - 20 races in a row
        raise SeegaanError(f"could not lock the folder {folder}; try again")
    try:
        if fd is not None:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {_host()}\n".encode("ascii"), 0)
        yield lock_path
    finally:
        if fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(lock_path)  # while still holding the lock; waiters re-check the inode
            os.close(fd)


# ----------------------------------------------------------------------------------- terminate_cleanly


class Terminated(SystemExit):
    """Raised by :func:`terminate_cleanly`'s handler when the process gets SIGTERM or SIGHUP.

    Its exit status is 128 + the signal number (143 for SIGTERM), as a shell reports a killed process.
    """

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signum = signum


def _default_signals() -> tuple:
    return tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextlib.contextmanager
def terminate_cleanly(signals: Iterable[int] | None = None) -> Iterator[None]:
    """Within the block, SIGTERM (and SIGHUP) raise :class:`Terminated` so ``finally``/``atomic_path`` clean-up runs.

    Use around a CLI command (``with terminate_cleanly(): app()``) or as a decorator. Only the first
    signal raises; later ones are ignored so the clean-up itself is not interrupted. The previous
    handlers are restored on exit. Outside the main thread (where handlers cannot be installed) the
    block runs unchanged.
    """
    sigs = _default_signals() if signals is None else tuple(signals)
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = []

    def handler(signum, frame):
        if fired:
            return
        fired.append(signum)
        raise Terminated(signum)

    previous = {}
    try:
        for s in sigs:
            previous[s] = signal.signal(s, handler)
        yield
    finally:
        for s, old in previous.items():
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(s, old if old is not None else signal.SIG_DFL)


# ---------------------------------------------------------------------------------------------- hashes


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_netcdf(path: str | os.PathLike, *, what: str):
    """Read a netCDF file fully into memory (the file is closed again); ``what`` names it in errors.

    A missing file, a folder or an unreadable file is a one-line :class:`SeegaanError`.
    """
    path = Path(path)
    if not path.exists():
        raise SeegaanError(f"{what} file {path} does not exist")
    if path.is_dir():
        raise SeegaanError(f"{path} is a folder, not a {what} file (.nc)")
    try:
        with xr.open_dataset(path, engine="netcdf4") as handle:
            return handle.load()
    except Exception as exc:  # netCDF4 raises OSError/RuntimeError/ValueError on bad files
        first = str(exc).splitlines()[0] if str(exc) else "corrupt file"
        raise SeegaanError(f"{path} is not a readable netCDF {what} ({type(exc).__name__}: {first})") from None


def make_output_folder(path: str | os.PathLike, *, option: str = "the output folder") -> Path:
    """Create an output folder (and its parents) or say in one line why it cannot be."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise SeegaanError(f"{option} {path} is a file, not a folder; give a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SeegaanError(
            f"cannot create {option} {path} ({exc.strerror}); choose a folder you can write to"
        ) from None
    return path
