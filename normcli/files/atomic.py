"""Atomic, no-clobber-by-default file writing.

:func:`atomic_write` writes into a temporary file next to the target
(``.{name}.normcli-{random}.tmp`` in the same directory, so the final rename
never crosses file systems), flushes and fsyncs it, then moves it onto the
target and fsyncs the directory.  Readers therefore see either the old file
or the complete new one, never a partial file.  If anything goes wrong -
including :class:`KeyboardInterrupt` - the temporary file is removed and the
target is left untouched.

Only a ``SIGKILL`` (or a power cut) can leave a temporary file behind;
:func:`cleanup_stale_temps` removes such leftovers once they are old enough
that no running normcli can still be writing them.

The temporary name is chosen, and guarded by the cleanup code, before the
file is created (``O_CREAT | O_EXCL``): no interrupt can fall between its
creation and the code that would remove it.  The new file gets the
permissions of the file it replaces, or ``0o666`` minus the umask.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import stat
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from normcli._gather import Gathered, record
from normcli.errors import OutputError

__all__ = ["atomic_write", "StagedWrites", "cleanup_stale_temps", "same_file", "TEMP_MARKER"]

#: Part of every temporary file name; used by :func:`cleanup_stale_temps`.
TEMP_MARKER = ".normcli-"
#: Bytes of the target's name kept in a temporary name, whose other 26 bytes are
#: ``.``, the marker, 12 hex digits and ``.tmp``: far below the 255 of NAME_MAX.
_MAX_NAME_IN_TEMP = 100


def _temp_name(name: str, kind: str = "tmp", tag: str | None = None) -> str:
    """A fresh hidden name for a temporary file beside a file called ``name``.

    ``name`` is shortened to its longest prefix of whole characters that takes at
    most ``_MAX_NAME_IN_TEMP`` bytes in the file system's encoding (characters,
    not bytes: 60 emoji are 240 bytes), so the result is a valid name whenever
    ``name`` is one.
    """
    if len(os.fsencode(name)) > _MAX_NAME_IN_TEMP:
        low, high = 0, min(len(name), _MAX_NAME_IN_TEMP)  # a character takes >= 1 byte
        while low < high:  # the longest prefix that fits
            mid = (low + high + 1) // 2
            if len(os.fsencode(name[:mid])) <= _MAX_NAME_IN_TEMP:
                low = mid
            else:
                high = mid - 1
        name = name[:low]
    tag = f"{tag}-" if tag else ""  # (a run's tag: its temporaries can be swept by name)
    return f".{name}{TEMP_MARKER}{tag}{os.urandom(6).hex()}.{kind}"


def _umask() -> int:
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # no way to read it without setting it
    os.umask(mask)
    return mask


def _os_error(path: Path, error: OSError) -> OutputError:
    if isinstance(error, FileNotFoundError):
        return OutputError(path, "directory does not exist")
    if isinstance(error, PermissionError):
        return OutputError(path, "permission denied")
    if isinstance(error, IsADirectoryError):
        return OutputError(path, "is a directory")
    return OutputError(path, (error.strerror or str(error)).strip() or type(error).__name__)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], *, force: bool = False) -> Iterator[BinaryIO]:
    """Open a temporary file that atomically becomes `path` on success.

    Parameters
    ----------
    path : path-like
        The target file; its directory must exist.
    force : bool, optional
        Replace an existing target.  Without it an existing target is an
        error, checked before writing and again, atomically where the file
        system supports hard links, when the file is put in place.

    Yields
    ------
    binary file object
        Write the contents to it; do not close it.

    Raises
    ------
    OutputError
        ``"exists (use --force to replace it)"``, ``"is a directory"``,
        ``"directory does not exist"``, ``"permission denied"``, disk full...
        An :class:`OSError` raised inside the ``with`` block is taken for an
        error writing the file, and named so (``"out.bin: No space left on
        device"``); other exceptions propagate unchanged.  Either way the
        temporary file is removed.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.bin"
    >>> with atomic_write(target) as f:
    ...     _ = f.write(b"data")
    >>> target.read_bytes()
    b'data'
    """
    target, tmp, mode = _prepare(path, force)
    try:  # entered before the temporary file exists: an interrupt cannot leak it
        with _writing(tmp, target, mode, sync=True) as f:
            yield f
        _put_in_place(tmp, target, force)
        _fsync_dir(target.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _prepare(path: str | os.PathLike[str], force: bool,
             umask: int | None = None, tag: str | None = None) -> tuple[Path, Path, int]:
    """Check the target; choose a temporary name beside it and the file's mode.

    Returns ``(target, tmp, mode)``.  Nothing is created yet: callers register
    or guard ``tmp`` first, so that no interrupt can fall between a file's
    creation and the code that would remove it.  ``umask``: the process's, if
    the caller has read it already.
    """
    target = Path(path)
    existing = None
    try:
        existing = target.stat()
    except FileNotFoundError:
        pass
    except OSError as e:
        raise _os_error(target, e) from None
    if existing is not None and stat.S_ISDIR(existing.st_mode):
        raise OutputError(target, "is a directory")
    if existing is not None and not force:
        raise OutputError(target, "exists (use --force to replace it)")
    if existing is None:
        mode = 0o666 & ~(_umask() if umask is None else umask)
    else:
        mode = stat.S_IMODE(existing.st_mode)
    return target, target.parent / _temp_name(target.name, tag=tag), mode


def _create(tmp: Path, target: Path, mode: int, raw: bool = False) -> BinaryIO:
    """Create the temporary file (never an existing one) with ``mode``; unbuffered
    (an ``io.FileIO``) if ``raw``."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(tmp, flags, 0o600)
    except OSError as e:
        raise _os_error(target, e) from None
    try:
        with contextlib.suppress(OSError, AttributeError):  # (no fchmod: Windows < 3.13)
            os.fchmod(fd, mode)  # exactly the mode, whatever the umask
        return io.FileIO(fd, "wb") if raw else os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        raise


@contextlib.contextmanager
def _writing(tmp: Path, target: Path, mode: int, raw: bool = False,
             sync: bool = False) -> Iterator[BinaryIO]:
    """The temporary file ``tmp``, created for the block, then flushed (and fsynced
    if ``sync``) and closed.

    Every :class:`OSError`, from a write in the block, the flush, the fsync or
    the close, becomes one :class:`OutputError` naming ``target``.  After an
    error the file is closed quietly: closing flushes the buffer again, and that
    second error ("No space left on device" again) must not replace the first.
    """
    f = _create(tmp, target, mode, raw)
    try:
        yield f
        f.flush()
        if sync:
            os.fsync(f.fileno())
    except BaseException as e:
        with contextlib.suppress(OSError):
            f.close()
        if isinstance(e, OSError):
            raise _os_error(target, e) from None
        raise
    try:
        f.close()
    except OSError as e:
        raise _os_error(target, e) from None


def _sync_path(staged: tuple) -> OutputError | None:
    """fsync a closed temporary file (its dirty pages, whoever wrote them)."""
    tmp, target = staged[:2]
    try:
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as e:
        return _os_error(target, e)
    return None


class StagedWrites(Gathered):
    """Several outputs that appear together, or not at all.

    Each :meth:`open` writes a temporary file beside its target (as
    :func:`atomic_write` does) but leaves it there; :meth:`commit` moves them
    all into place, all or none (see :meth:`commit`).  Leaving the ``with``
    block by an exception, including ``KeyboardInterrupt`` or ``SystemExit``
    from a signal, removes every temporary file and touches no target.  Only
    a crash (SIGKILL, power cut) during :meth:`commit` itself can leave some
    targets new and some old, each one whole, and the replaced files kept
    aside under hidden temporary names (see :func:`cleanup_stale_temps`).

    With ``sync=False`` nothing is fsynced: the files are still renamed into
    place only when whole, so no process ever sees half a file, but after a
    power cut or kernel crash soon after, an output may be missing or empty
    (the ``--no-sync`` of scratch outputs, about 2x faster on a real disk).

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with StagedWrites() as staged:
    ...     with staged.open(d / "a.bin") as f:
    ...         _ = f.write(b"a")
    ...     sorted(p.name for p in d.iterdir() if not p.name.startswith("."))
    ...     staged.commit()
    []
    >>> sorted(p.name for p in d.iterdir())
    ['a.bin']

    On a cluster (:mod:`normcli._gather`) an instance pickles as a worker
    copy: it writes temporary files tagged with this instance's token
    (``.NAME.normcli-TOKEN-RANDOM.tmp``, beside their targets on the shared
    file system), which the instance adopts when the shard that wrote them
    returns; :meth:`discard` also sweeps the tagged files of the folders
    :meth:`watch`-ed (those of work that was lost with its worker).
    """

    def __init__(self, *, sync: bool = True) -> None:
        self.durable = sync  # fsync files and directories (False: rename only)
        self._umask = _umask()  # once: reading it costs a /proc read per file
        # (temporary file, target, force, (st_dev, st_ino) of the temporary file)
        self._staged: list[tuple[Path, Path, bool, tuple[int, int]]] = []
        self._made_dirs: list[Path] = []
        self._present: set[Path] = set()  # directories made or found by makedirs()
        self._lock = threading.Lock()  # open() may be called from worker threads
        self._closed = False  # set by discard(): later files are removed, not staged
        self._creating: set[Path] = set()  # temporary files being written
        # Each staged file is synced in the background as soon as it is closed,
        # so that the disk writes overlap the work on the next outputs.
        self._syncing: ThreadPoolExecutor | None = None
        self._synced: list = []  # futures of _sync_path
        self._watched: set[Path] = set()  # folders where worker copies may stage files

    def worker_state(self):
        return (self.durable, self._umask)

    @classmethod
    def from_worker_state(cls, state) -> StagedWrites:
        copy = cls(sync=state[0])
        copy._umask = state[1]
        return copy

    def absorb_gathered(self, items: list) -> None:
        """Adopt the files and folders a worker copy staged and made."""
        for kind, *rest in items:
            if kind == "dir":
                with self._lock:
                    self._made_dirs.append(Path(rest[0]))
                continue
            tmp, target, force = Path(rest[0]), Path(rest[1]), rest[2]
            try:
                st = os.stat(tmp)
            except OSError as e:
                raise OutputError(target, f"staged by a worker but not found here "
                                  f"({e.strerror}): is the folder on a shared file system?"
                                  ) from None
            with self._lock:
                if not self._closed:
                    self._staged.append((tmp, target, force, (st.st_dev, st.st_ino)))
                    continue
            with contextlib.suppress(OSError):
                tmp.unlink()

    @classmethod
    def undo_gathered(cls, items: list) -> None:
        for kind, *rest in items:
            if kind == "file":
                with contextlib.suppress(OSError):
                    os.unlink(rest[0])
        for kind, *rest in reversed(items):
            if kind == "dir":
                with contextlib.suppress(OSError):
                    os.rmdir(rest[0])

    def watch(self, directories) -> None:
        """Folders where worker copies may stage files (swept by :meth:`discard`)."""
        self._watched.update(Path(d) for d in directories)

    def sweep(self) -> list[Path]:
        """Remove the tagged temporary files of this instance's worker copies left in
        the watched folders (by work lost with its worker, or stopped mid-file)."""
        if self._client_token is None:
            return []
        removed = []
        for directory in sorted(self._watched):
            try:
                found = list(directory.glob(f".*{TEMP_MARKER}{self._client_token}-*.tmp"))
            except OSError:
                continue
            for p in found:
                with contextlib.suppress(OSError):
                    p.unlink()
                    removed.append(p)
        return removed

    def makedirs(self, directory: str | os.PathLike[str]) -> None:
        """Create ``directory`` and its parents; :meth:`discard` removes the new ones."""
        directory = Path(directory)
        if directory in self._present:  # asked again for every output in it
            return
        missing = []
        for d in (directory, *directory.parents):
            if d.exists():
                break
            missing.append(d)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise _os_error(directory, e) from None
        if self.gather_token is not None:  # a worker copy: the client removes them
            for d in reversed(missing):
                record(self, ("dir", str(d)))
        with self._lock:
            self._made_dirs.extend(reversed(missing))
            self._present.add(directory)

    def __enter__(self) -> StagedWrites:
        return self

    def __exit__(self, kind, value, tb) -> None:
        self.discard()

    @contextlib.contextmanager
    def open(self, path: str | os.PathLike[str], *, force: bool = False,
             raw: bool = False) -> Iterator[BinaryIO]:
        """A file to write ``path``'s contents to; it is put in place by :meth:`commit`.

        ``raw``: an unbuffered ``io.FileIO``, for writers that make a few large
        writes (each ``write`` is then one system call).
        """
        target, tmp, mode = _prepare(path, force, self._umask, tag=self.gather_token)
        with self._lock:
            if self._closed:
                raise OutputError(target, "not written: the run was stopped")
            self._creating.add(tmp)  # discard() removes it from here on
        try:
            with _writing(tmp, target, mode, raw) as f:
                st = os.fstat(f.fileno())  # to know the file again at commit()
                yield f
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            with self._lock:
                self._creating.discard(tmp)
            raise
        if self.gather_token is not None:  # a worker copy: the client adopts it
            try:
                error = _sync_path((tmp, target)) if self.durable else None
                if error is not None:
                    raise error
                record(self, ("file", str(tmp), str(target), force))
            except BaseException:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                raise
            finally:
                with self._lock:
                    self._creating.discard(tmp)
            return
        with self._lock:
            self._creating.discard(tmp)
            if not self._closed:
                entry = (tmp, target, force, (st.st_dev, st.st_ino))
                self._staged.append(entry)
                if not self.durable:
                    return
                if self._syncing is None:
                    self._syncing = ThreadPoolExecutor(max_workers=2,
                                                       thread_name_prefix="normcli-sync")
                self._synced.append(self._syncing.submit(_sync_path, entry))
                return
        # discard() already ran: a worker thread outlived an interrupt of the
        # main thread (e.g. a thread started while Ctrl-C arrived, which the
        # executor never joined).  Remove the file instead of leaking it.
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise OutputError(target, "not written: the run was stopped")

    def sync(self) -> None:
        """Wait until every staged file is on disk; :meth:`commit` does it too."""
        with self._lock:
            pending, self._synced = self._synced, []
        for future in pending:
            error = future.result()
            if error is not None:
                raise error

    def _stop_syncing(self) -> None:
        with self._lock:
            pool, self._syncing, pending, self._synced = self._syncing, None, self._synced, []
        for future in pending:
            future.cancel()
        if pool is not None:
            pool.shutdown(wait=False)

    def commit(self) -> None:
        """Sync every staged file to disk, then put them all in place, or none.

        Every target is checked first (without ``force`` it must not exist; none
        may be a directory), so that a file planted by another process since it
        was staged stops the commit before anything moves.  Then each file is
        moved onto its target; a file it replaces is kept aside first (a hard
        link under a hidden temporary name), so that when a later move fails,
        or an interrupt arrives, the moves done are undone: each replaced file
        is put back and each new one removed.  Without ``force`` a target is
        still claimed atomically (a hard link fails if it exists).  The files
        kept aside are removed once every target is in place.
        """
        self.sync()
        for _, target, force, _ in self._staged:
            _check_target(target, force)
        placed: list[_Placed] = []
        try:
            for tmp, target, force, ident in self._staged:
                _place(tmp, target, force, ident, placed)
        except BaseException:
            _undo(placed)
            raise
        for done in placed:  # every target is in place: drop what was kept aside
            if done.backup is not None:
                with contextlib.suppress(OSError):
                    os.unlink(done.backup)
        directories = {target.parent for _, target, _, _ in self._staged}
        self._staged.clear()
        self.sweep()
        if self.durable:
            for directory in directories:
                _fsync_dir(directory)
        self._made_dirs.clear()
        self._stop_syncing()

    def discard(self) -> None:
        """Remove the temporary files not yet committed; files staged later are removed too."""
        with self._lock:
            self._closed = True
            staged, self._staged = self._staged, []
            staged += [(tmp, None, False, None) for tmp in self._creating]
        self._stop_syncing()
        for tmp, _, _, _ in staged:
            with contextlib.suppress(OSError):
                tmp.unlink()
        self.sweep()
        for directory in reversed(self._made_dirs):
            with contextlib.suppress(OSError):
                directory.rmdir()  # only if still empty
        self._made_dirs.clear()
        self._present.clear()


class _Placed:
    """A target being put in place by :meth:`StagedWrites.commit`, and how to undo it.

    Recorded before the first system call, so that an interrupt between any two
    steps leaves what :func:`_undo` needs: the target, the identity of the new
    file, and the name of the copy of the replaced one (which may not exist yet).
    """

    __slots__ = ("target", "ident", "backup")

    def __init__(self, target: Path, ident: tuple[int, int], backup: str | None) -> None:
        self.target, self.ident, self.backup = target, ident, backup


def _check_target(target: Path, force: bool) -> None:
    """Refuse a target that a move onto it would not replace as it should."""
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return
    except OSError as e:
        raise _os_error(target, e) from None
    if stat.S_ISDIR(st.st_mode):
        raise OutputError(target, "is a directory")
    if not force:
        raise OutputError(target, "exists (use --force to replace it)")


#: os.link's arguments to link a symlink itself, not what it points to (where possible).
_LINK_ITSELF = {"follow_symlinks": False} if os.link in os.supports_follow_symlinks else {}


def _place(tmp: Path, target: Path, force: bool, ident: tuple[int, int],
           placed: list[_Placed]) -> None:
    """Move ``tmp`` onto ``target``, first keeping aside the file it replaces."""
    if not force:
        placed.append(_Placed(target, ident, None))
        _put_in_place(tmp, target, force=False)
        return
    backup = str(target.parent / _temp_name(target.name))
    placed.append(done := _Placed(target, ident, backup))
    try:
        try:  # a second name for the file replaced: it stays whole, and readable
            os.link(target, backup, **_LINK_ITSELF)
        except FileNotFoundError:  # nothing to replace
            done.backup = None
        except FileExistsError:
            raise
        except OSError:  # no hard links here (or a directory): move it aside instead
            if stat.S_ISDIR(os.lstat(target).st_mode):
                raise OutputError(target, "is a directory") from None
            try:
                os.rename(target, backup)
            except FileNotFoundError:
                done.backup = None
        os.replace(tmp, target)
    except OSError as e:
        raise _os_error(target, e) from None


def _undo(placed: list[_Placed]) -> None:
    """Put back what :func:`_place` replaced and remove what it added, last first.

    Termination signals wait meanwhile (where they can be blocked): an undo cut
    short would leave the outputs half old, half new.
    """
    blocked = _block_signals()
    try:
        for done in reversed(placed):
            if done.backup is not None and os.path.lexists(done.backup):
                with contextlib.suppress(OSError):
                    os.replace(done.backup, done.target)
                with contextlib.suppress(OSError):  # (if it was the same file: still there)
                    os.unlink(done.backup)
                continue
            with contextlib.suppress(OSError):
                st = os.lstat(done.target)
                if (st.st_dev, st.st_ino) == done.ident:  # ours, not a file planted since
                    os.unlink(done.target)
    finally:
        if blocked is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def _block_signals() -> set | None:
    """Block the termination signals in this thread; the previous mask, or None."""
    if not hasattr(signal, "pthread_sigmask"):
        return None
    wanted = {getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")
              if hasattr(signal, name)}
    try:
        return signal.pthread_sigmask(signal.SIG_BLOCK, wanted)
    except (OSError, ValueError):
        return None


def _put_in_place(tmp: Path, target: Path, force: bool) -> None:
    try:
        if force:
            os.replace(tmp, target)
            return
        try:
            # link() fails if the target appeared meanwhile: no clobbering.
            os.link(tmp, target)
        except FileExistsError:
            raise OutputError(target, "exists (use --force to replace it)") from None
        except OSError:
            # No hard links on this file system: best effort.
            if os.path.lexists(target):
                raise OutputError(target, "exists (use --force to replace it)") from None
            os.replace(tmp, target)
        else:
            tmp.unlink()
    except OSError as e:
        raise _os_error(target, e) from None


def cleanup_stale_temps(
    directory: str | os.PathLike[str], *, older_than: float = 3600.0
) -> list[Path]:
    """Remove temporary files left in `directory` by a killed normcli run.

    Only regular files named ``.*.normcli-*.tmp`` whose modification time is
    more than `older_than` seconds ago are removed; a run still writing its
    file keeps touching it and is not affected (use a value comfortably
    above the longest expected write).  Errors (file already gone, no
    permission) are ignored.

    Parameters
    ----------
    directory : path-like
    older_than : float, optional
        Minimum age in seconds (default one hour).

    Returns
    -------
    list of pathlib.Path
        The files removed.
    """
    now = time.time()
    removed = []
    try:
        candidates = list(Path(directory).glob(f".*{TEMP_MARKER}*.tmp"))
    except OSError:
        return removed
    for p in sorted(candidates):
        try:
            st = p.lstat()
            if stat.S_ISREG(st.st_mode) and now - st.st_mtime > older_than:
                p.unlink()
                removed.append(p)
        except OSError:
            continue
    return removed


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two paths name the same file.

    Uses :func:`os.path.samefile` (same device and inode, so hard links and
    symlinks are detected) when both exist, and compares the resolved
    absolute paths otherwise.

    >>> same_file("a/../b.npy", "b.npy")
    True
    """
    try:
        return os.path.samefile(a, b)
    except OSError:
        pass
    ra = os.path.normcase(os.path.realpath(a))
    rb = os.path.normcase(os.path.realpath(b))
    return ra == rb
