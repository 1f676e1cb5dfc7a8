"""Atomic writes: write a sibling temporary file, then rename it over the target.

Every cache, checkpoint, bank, plot, export and record of the package is written through
:func:`atomic_path` (or its two shorthands), so a crash or a kill mid-write leaves the old file
or the new one, never half of one.  The temporary sibling is ``.tmp<PID>.<name>`` — it keeps
the target's suffix, which Keras (``.weights.h5``) and numpy (``.npy``) insist on.  A write
first removes stale temporaries of the same target whose process is gone, so an interrupted
write leaves nothing behind for long.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

_TMP = re.compile(r"^\.tmp(\d+)\.(.+)$")


def temp_sibling(path: str | os.PathLike) -> Path:
    """The temporary sibling this process writes ``path`` through: ``.tmp<PID>.<name>``."""
    path = Path(path)
    return path.with_name(f".tmp{os.getpid()}.{path.name}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Remove temporaries of ``path`` left by processes that no longer run; return them."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    removed = []
    for p in path.parent.iterdir():
        m = _TMP.match(p.name)
        if not m or m.group(2) != path.name or int(m.group(1)) == os.getpid() or _alive(int(m.group(1))):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    elif p.exists() or p.is_symlink():
        p.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, replace_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write (a file, a folder or a link); on success it
    is renamed over ``path``, on any exception it is removed and ``path`` is left as it was.

    Parameters
    ----------
    path : path
        The target; its folder must exist.
    replace_dir : bool
        Allow replacing an existing *folder* ``path`` (moved aside, then deleted after the
        rename); without it a folder target raises :class:`IsADirectoryError` from the rename.
    """
    path = Path(path)
    remove_stale_temps(path)
    tmp = temp_sibling(path)
    _remove(tmp)
    try:
        yield tmp
        if replace_dir and path.is_dir() and not path.is_symlink():
            old = path.with_name(f".tmp{os.getpid()}.old.{path.name}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        _remove(tmp)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, fsync: bool = False) -> None:
    """Write ``data`` to ``path`` atomically (``fsync`` first when it must survive a power cut)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike) -> Iterator[bool]:
    """Hold an exclusive advisory lock (``flock``) on the file ``path`` for the block; another
    process asking for the same lock waits until it is released (or its holder dies).

    Yields True when locked; False without locking where ``path`` cannot be created (a
    read-only folder: nothing can be written there either) or the platform has no ``flock``.
    """
    try:
        import fcntl  # lazy: POSIX only
    except ImportError:  # not POSIX
        yield False
        return
    try:
        f = open(path, "a")
    except OSError:
        yield False
        return
    with f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
