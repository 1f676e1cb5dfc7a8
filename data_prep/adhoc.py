"""A raw keyword folder used as a prepared dataset: indexed on the fly into a user cache.

``kws-proto eval --data`` and ``kws-proto spot-eval --data`` (and ``--cohort``) take a prepared
dataset folder (``manifest.csv``) or a raw folder of keyword recordings, the layouts
``kws-prep folder`` reads (``SRC/<keyword>/*.wav``, FSDD-style ``LABEL_SPEAKER_N.wav``; see
:mod:`data_prep.folder`).  A raw folder is indexed by :func:`data_prep.folder.index_folder` with
symbolic links to its files (nothing copied or converted) into the user cache, never into the
folder itself, which may be read-only::

    $KWS_PROTO_CACHE/folders/<folder name>-<key>/   (default $XDG_CACHE_HOME/kws_proto,
                                                      i.e. ~/.cache/kws_proto)

with the dataset's own feature caches in its ``.cache/``.  ``<key>`` hashes the folder's
resolved path and every recording's relative path, size and modification time, so an edited
folder is indexed anew and an unchanged one is reused.  Every keyword is a test class (the
split ``kws-prep folder`` writes); unreadable files are skipped and listed in the index's
``report.json``.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from pathlib import Path

from data_prep.folder import discover_folder, index_folder
from kws_proto.data.dataset import MANIFEST
from kws_proto.errors import DatasetError
from kws_proto.util.atomic import atomic_path

CACHE_ENV = "KWS_PROTO_CACHE"


def cache_root() -> Path:
    """``$KWS_PROTO_CACHE``, else ``$XDG_CACHE_HOME/kws_proto``, else ``~/.cache/kws_proto``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "kws_proto"


def folder_key(src: str | os.PathLike) -> str:
    """Hex SHA-256 of the raw folder ``src``: its resolved path and each recording's relative
    path, size and modification time.  Raises :class:`DatasetError` when it holds no keyword
    recordings."""
    src = Path(src).resolve()
    cands, _, noises = discover_folder(src, convert=False)
    if not cands:
        raise DatasetError(f"{src}: neither a prepared dataset (no {MANIFEST}) nor a folder of "
                           "keyword recordings (SRC/<keyword>/*.wav or LABEL_SPEAKER_N.wav files)")
    h = hashlib.sha256(str(src).encode())
    for f in sorted([c.src for c in cands] + list(noises)):
        st = f.stat()
        h.update(f"\n{f.relative_to(src).as_posix()}\t{st.st_size}\t{st.st_mtime_ns}".encode())
    return h.hexdigest()


def as_dataset(path: str | os.PathLike, progress: bool = False) -> Path:
    """``path`` itself when it is a prepared dataset, else the index of the raw keyword folder
    ``path`` in the user cache (made on first use; module docstring)."""
    path = Path(path)
    if (path / MANIFEST).is_file():
        return path
    if not path.is_dir():
        raise DatasetError(f"{path}: no such folder (not a prepared dataset, nor a raw folder "
                           "of keyword recordings)")

    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", path.resolve().name) or "folder"
    out = cache_root() / "folders" / f"{name}-{folder_key(path)[:16]}"
    if (out / MANIFEST).is_file() and (out / "splits.json").is_file():
        return out
    if progress:
        print(f"indexing the raw folder {path} into {out}", file=sys.stderr, flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out, replace_dir=True) as tmp:
        index_folder(path, tmp, mode="symlink", progress=progress)
    return out
