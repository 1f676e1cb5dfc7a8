"""Fetch, verify and safely unpack the Google Speech Commands archives.

Published archives (size in bytes, SHA-256), looked up rather than guessed:

- v0.02: size and SHA-256 from TensorFlow Datasets,
  ``tensorflow_datasets/url_checksums/speech_commands.txt``.
- v0.01: SHA-256 from torchaudio, ``torchaudio/datasets/speechcommands.py`` (``_CHECKSUMS``); size
  from the download log of TensorFlow's ``examples/speech_commands`` recipe ("Successfully
  downloaded speech_commands_v0.01.tar.gz (1488293908 bytes)").
"""

from __future__ import annotations

import os
import shutil
import sys
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from kws_proto.util.provenance import file_sha256
from kws_proto.errors import ConfigError, DatasetError


@dataclass(frozen=True)
class ArchiveInfo:
    """Where an official archive lives and what it must hash to."""

    url: str
    size: int
    sha256: str

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


ARCHIVES = {
    1: ArchiveInfo(
        "http://download.tensorflow.org/data/speech_commands_v0.01.tar.gz",
        1488293908,
        "743935421bb51cccdb6bdd152e04c5c70274e935c82119ad7faeec31780d811d",
    ),
    2: ArchiveInfo(
        "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz",
        2428923189,
        "af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58",
    ),
}

_CHUNK = 1 << 20


def archive_info(version: int) -> ArchiveInfo:
    """The published archive of Speech Commands ``version`` (1 or 2)."""
    if version not in ARCHIVES:
        raise ConfigError(f"--version {version}: Speech Commands versions are 1 and 2")
    return ARCHIVES[version]


def verify_archive(path: str | os.PathLike, sha256: str, size: int | None = None,
                   progress: bool = False) -> None:
    """Check an archive's size (when given) and SHA-256.

    Raises
    ------
    DatasetError
        Missing file, wrong size or wrong hash; the message names the file and both values.
    """
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"{p}: no such archive")
    actual_size = p.stat().st_size
    if size is not None and actual_size != size:
        raise DatasetError(
            f"{p}: checksum failed: size {actual_size} bytes, expected {size} "
            "(a truncated or different archive)"
        )
    digest = file_sha256(p, progress=progress)
    if digest != sha256.lower():
        raise DatasetError(f"{p}: checksum failed: sha256 {digest}, expected {sha256.lower()}")


def download(url: str, dest: str | os.PathLike, timeout: float = 10.0, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` (written aside as ``dest.part``, then renamed).

    Raises
    ------
    DatasetError
        The server cannot be reached (no network) or the transfer fails; the message says to pass
        ``--archive`` with a copy already on disk.
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(part, "wb") as f:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name,
                      disable=not progress, file=sys.stderr) as bar:
                for chunk in iter(lambda: resp.read(_CHUNK), b""):
                    f.write(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        part.unlink(missing_ok=True)
        raise DatasetError(
            f"cannot download {url} ({getattr(e, 'reason', e)}); without network, download it "
            "elsewhere and pass it with --archive FILE"
        ) from e
    os.replace(part, dest)
    return dest


def _safe_target(out: Path, member: tarfile.TarInfo) -> Path | None:
    """Where ``member`` may be written inside ``out``, or raise; ``None`` for the archive root."""
    name = member.name
    pure = PurePosixPath(name)
    if name.startswith(("/", "\\")) or pure.is_absolute() or (len(name) > 1 and name[1] == ":"):
        raise DatasetError(f"refused archive member {name!r}: absolute path")
    if ".." in pure.parts or "\\" in name:
        raise DatasetError(f"refused archive member {name!r}: its path escapes the output folder")
    if not (member.isfile() or member.isdir()):
        kind = "link" if (member.issym() or member.islnk()) else "special file"
        raise DatasetError(f"refused archive member {name!r}: a {kind}, only files and folders are extracted")
    parts = [p for p in pure.parts if p not in ("", ".")]
    if not parts:
        return None
    target = out.joinpath(*parts)
    if not target.resolve().is_relative_to(out.resolve()):
        raise DatasetError(f"refused archive member {name!r}: it resolves outside {out}")
    return target


def safe_extract(archive: str | os.PathLike, out: str | os.PathLike, progress: bool = True) -> int:
    """Unpack a tar(.gz) archive into ``out``, refusing any member that could escape it.

    Members are streamed and checked one by one before anything is written: absolute paths,
    ``..`` components, paths through symlinks that leave ``out``, links and special files are
    refused with a :class:`DatasetError` naming the member.  Files are written by this function
    (no permissions or owners from the archive).

    Returns
    -------
    n_files : int
        Regular files written.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    try:
        with tarfile.open(archive, mode="r|*") as tar, tqdm(
            desc="extracting", unit="file", disable=not progress, file=sys.stderr, leave=False
        ) as bar:
            for member in tar:
                target = _safe_target(out, member)
                if target is None:
                    continue
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(member)
                with open(target, "wb") as f:
                    shutil.copyfileobj(src, f, _CHUNK)
                n += 1
                bar.update(1)
    except (tarfile.TarError, EOFError, OSError) as e:
        raise DatasetError(f"{archive}: cannot unpack ({e})") from e
    return n
