"""Whole-file outputs written safely: a fresh temporary file (or folder) beside the output replaces it at the
end, under the output's lock, and an output that is one of the inputs is refused before any work.

The one implementation of temp-file-then-replace; ``tracesafe.store`` re-exports it."""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path


class OutputError(ValueError):
    """An output that cannot be written safely: it is one of the inputs (or a folder holding one), a folder
    where a file is wanted, or another process writes it. The message starts with the output's path."""


def lock_name(path: str | os.PathLike) -> str:
    """``PATH.lock`` beside the file a name leads to: every symlink to one output shares its lock."""
    return f"{os.path.realpath(path)}.lock"


def file_lock(path: str | os.PathLike, wait: float):
    """The lock of output ``path`` (``lock_name``), waiting up to ``wait`` seconds when acquired."""
    from filelock import FileLock

    # Beside the output, not on it: whole-file outputs are replaced (a new inode), the lock file stays.
    # thread_local=False: generation threads write through one writer.
    return FileLock(lock_name(path), timeout=wait, thread_local=False)


def acquire(lock, path: str | os.PathLike) -> None:
    """Acquire ``file_lock(path)``; OutputError naming the lock when another process holds it."""
    from filelock import Timeout

    try:
        lock.acquire()
    except Timeout:
        held = lock_name(path)
        if not os.path.exists(held):  # filelock reports a failed open as a timeout
            raise OutputError(f"{path}: cannot create its lock file {held} (is the folder writable?)") from None
        if not os.access(held, os.W_OK):
            raise OutputError(f"{path}: its lock file {held} is not writable by this user (another user's?)") from None
        raise OutputError(f"{path}: another process is writing it (it holds {held}); wait for it to finish") from None


@contextmanager
def output_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold ``PATH.lock`` for the block; OutputError at once if another writer holds it."""
    lock = file_lock(path, 0)
    acquire(lock, path)
    try:
        yield
    finally:
        lock.release()


def refuse_input_as_output(output: str | os.PathLike, inputs: Iterable[str | os.PathLike]) -> None:
    """OutputError when ``output`` is one of ``inputs`` (the same file under any name: hard link, symlink,
    ``./``) or a folder holding one: writing it would destroy the input while it is read."""
    out = Path(output)
    out_res = out.resolve()
    for inp in inputs:
        inp_res = Path(inp).resolve()
        if inp_res == out_res or (out.exists() and Path(inp).exists() and os.path.samefile(out, inp)):
            raise OutputError(f"{output}: the output is the input {inp}; write to another file")
        if out_res in inp_res.parents:
            raise OutputError(f"{output}: the output would replace a folder holding the input {inp}; write elsewhere")


def prepare_output(path: Path, inputs: Iterable[str | os.PathLike], folder: bool = False, marker: str | None = None) -> None:
    """Refuse an input as the output, a folder where a file is wanted and a file where a folder is; create the
    output's folder. A folder output replaces an existing folder only when it is empty or holds ``marker`` (the
    file that each such output writes, so it is one of ours): any other folder would be deleted with its files."""
    refuse_input_as_output(path, inputs)
    if path.is_dir() and not folder:
        raise OutputError(f"{path}: is a folder; the output must be a file")
    if folder and path.exists() and not path.is_dir():
        raise OutputError(f"{path}: is a file; this output is a folder")
    if folder and path.is_dir() and any(path.iterdir()) and not (marker and (path / marker).is_file()):
        ours = f"no {marker} of an earlier output" if marker else "not empty"
        raise OutputError(f"{path}: a folder with other files in it ({ours}); it would be replaced, so give a new or empty folder")
    path.parent.mkdir(parents=True, exist_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()  # read once at import: os.umask can only be read by setting it
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # no space, over quota, over the file size limit


def _replace_folder(new: str, path: Path, name: dict) -> None:
    """``new`` takes the place of the folder ``path``: the old one is moved aside first (a rename cannot replace a
    folder that is not empty) and deleted only once the new one is in place; a failure between puts it back."""
    aside = tempfile.mkdtemp(**name)  # a temporary name: a writer killed here leaves it for the next to remove
    os.replace(path, aside)  # onto an empty folder, which a rename may replace
    try:
        os.replace(new, path)
    except BaseException:
        os.replace(aside, path)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _remove_leftovers(path: Path) -> None:
    """Delete the temporary files and folders (``.NAME.XXXXXXXX.tmp``, as ``tempfile`` names them here) that writers
    of ``path`` killed with SIGKILL left beside it. Called under the output's lock, so no live writer owns one."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.tmp")
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return
    for entry in entries:
        if pattern.fullmatch(entry.name):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                Path(entry.path).unlink(missing_ok=True)


@contextmanager
def atomic_output(
    path: str | os.PathLike, inputs: Iterable[str | os.PathLike] = (), *, lock: bool = True, folder: bool = False,
    marker: str | None = None,
) -> Iterator[Path]:
    """Write a whole file at once: yields a new empty temporary file in ``path``'s folder, which replaces
    ``path`` when the block ends without an error and is deleted otherwise, so a crash leaves the old file
    (or none); a symlink's target is replaced, not the link. The temporary name is unique (``mkstemp``), so it
    cannot be an input. Refuses an output that is one of ``inputs``; holds the output's lock unless ``lock`` is
    False (the caller holds it already, or the file is a small by-product of an output that is locked).
    ``folder``: the output is a folder (a saved model, a report); an old one is replaced only if it is empty or
    holds the file ``marker`` (``prepare_output``), moved aside until the new one has taken its name."""
    path = Path(path)
    prepare_output(path, inputs, folder, marker)
    with output_lock(path) if lock else nullcontext():
        # The file the kernel would write (through a symlink, as an appended output is; "link/../out" where the link
        # leads), absolute, since the temporary file is its sibling and "." has no name to be a sibling of.
        path = Path(os.path.realpath(path))
        if lock:  # only a writer that holds the lock knows no live writer owns a temporary file of this output
            _remove_leftovers(path)
        name = dict(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        if folder:
            tmp = tempfile.mkdtemp(**name)
        else:
            fd, tmp = tempfile.mkstemp(**name)
            os.close(fd)
        try:
            yield Path(tmp)
            # mkstemp/mkdtemp make it private (0600/0700); the output gets the mode a new one would.
            if path.exists():
                mode = path.stat().st_mode & 0o7777
            else:
                mode = (0o777 if folder else 0o666) & ~_UMASK
            os.chmod(tmp, mode)
            if folder and path.is_dir():
                _replace_folder(tmp, path, name)
            else:
                os.replace(tmp, path)
        except BaseException as e:
            if isinstance(e, OSError) and e.errno in _FULL and (e.filename is None or str(e.filename).startswith(str(tmp))):
                # The write that failed for want of space was this output's: named as the output, not the temporary.
                e.filename = str(path) + ("" if e.filename is None else str(e.filename)[len(str(tmp)) :])
            if folder:
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                Path(tmp).unlink(missing_ok=True)
            raise
