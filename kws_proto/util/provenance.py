"""Where a result came from: the commit of the checkout that produced it, the digest of a file."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from tqdm.auto import tqdm

REPO = Path(__file__).resolve().parents[2]


def git_commit(repo: str | Path = REPO) -> str:
    """The checked-out commit of ``repo`` (with ``+changes`` when the work tree differs from it),
    or ``"unknown"`` outside a git checkout."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+changes" if dirty else "")


def file_sha256(path: str | os.PathLike, progress: bool = False) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks (a progress bar on stderr with ``progress``)."""
    h = hashlib.sha256()
    with open(path, "rb") as f, tqdm(total=os.path.getsize(path), unit="B", unit_scale=True,
                                      desc="checksum", disable=not progress, file=sys.stderr,
                                      leave=False) as bar:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
            bar.update(len(chunk))
    return h.hexdigest()
