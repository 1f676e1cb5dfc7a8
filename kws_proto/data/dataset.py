"""A prepared dataset folder: the contract between ``data_prep`` (which writes it) and the rest.

Layout of a dataset folder ``DIR``::

    DIR/manifest.csv            one row per usable clip: path,keyword,speaker,duration,sample_rate
                                (path relative to DIR, speaker "" when unknown)
    DIR/splits.json             {"train": [...], "validation": [...], "test": [...],
                                 "unknown": [...], "protocol": str, "seed": int | null}
    DIR/_background_noise_/     long noise recordings (optional)
    DIR/report.json             what the build skipped and why (written by data_prep)

Only :func:`load_manifest`, :func:`load_splits` and :func:`noise_files` are read by the feature
cache, the episode sampler and evaluation.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kws_proto.errors import DatasetError
from kws_proto.util.atomic import atomic_write_text

MANIFEST = "manifest.csv"
SPLITS = "splits.json"
NOISE_DIR = "_background_noise_"
COLUMNS = ("path", "keyword", "speaker", "duration", "sample_rate")
SPLIT_NAMES = ("train", "validation", "test", "unknown")


@dataclass(frozen=True)
class Clip:
    """One manifest row; ``path`` is relative to the dataset folder."""

    path: str
    keyword: str
    speaker: str = ""
    duration: float = 0.0
    sample_rate: int = 0


@dataclass
class Manifest:
    """The clips of a dataset folder, in manifest order (row ``i`` is feature-cache row ``i``)."""

    root: Path
    clips: list[Clip]

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def keywords(self) -> list[str]:
        """Sorted distinct keywords."""
        return sorted({c.keyword for c in self.clips})

    def paths(self) -> list[Path]:
        """Absolute paths of every clip, in row order."""
        return [self.root / c.path for c in self.clips]

    def indices_by_keyword(self) -> dict[str, np.ndarray]:
        """``{keyword: row indices}`` with indices ascending."""
        out: dict[str, list[int]] = {}
        for i, c in enumerate(self.clips):
            out.setdefault(c.keyword, []).append(i)
        return {k: np.asarray(v, dtype=np.int64) for k, v in out.items()}

    def speakers(self) -> np.ndarray:
        """Speaker of every row as a string array ("" when unknown)."""
        return np.asarray([c.speaker for c in self.clips], dtype=object)


def write_manifest(root: str | os.PathLike, clips: list[Clip]) -> Path:
    """Write ``root/manifest.csv`` atomically, rows sorted by (keyword, path)."""
    root = Path(root)
    rows = sorted(clips, key=lambda c: (c.keyword, c.path))

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for c in rows:
        w.writerow([c.path, c.keyword, c.speaker, f"{c.duration:.4f}", c.sample_rate])
    out = root / MANIFEST
    atomic_write_text(out, buf.getvalue())
    return out


def load_manifest(root: str | os.PathLike) -> Manifest:
    """Read ``root/manifest.csv``; a missing folder, file or column is a :class:`DatasetError`."""
    root = Path(root)
    path = root / MANIFEST
    if not path.is_file():
        raise DatasetError(
            f"{root}: not a prepared dataset (no {MANIFEST}); prepare it with `kws-prep`"
        )
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetError(f"{path}: missing column(s) {missing}")
        clips = []
        for n, row in enumerate(reader, start=2):
            try:
                clips.append(
                    Clip(
                        path=row["path"],
                        keyword=row["keyword"],
                        speaker=row["speaker"] or "",
                        duration=float(row["duration"] or 0.0),
                        sample_rate=int(row["sample_rate"] or 0),
                    )
                )
            except ValueError as e:
                raise DatasetError(f"{path}:{n}: malformed row ({e})") from e
    if not clips:
        raise DatasetError(f"{path}: the manifest lists no clips")
    return Manifest(root=root, clips=clips)


@dataclass(frozen=True)
class Splits:
    """Keyword classes of each few-shot split; every keyword is in at most one of them."""

    train: tuple[str, ...]
    validation: tuple[str, ...]
    test: tuple[str, ...]
    unknown: tuple[str, ...] = ()
    protocol: str = "random"
    seed: int | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for name in SPLIT_NAMES:
            for k in getattr(self, name):
                if k in seen:
                    raise DatasetError(f"keyword {k!r} is in both {seen[k]!r} and {name!r} splits")
                seen[k] = name

    def classes(self, split: str) -> tuple[str, ...]:
        if split not in SPLIT_NAMES:
            raise DatasetError(f"split={split!r} must be one of {SPLIT_NAMES}")
        return getattr(self, split)

    def to_dict(self) -> dict:
        d = {n: list(getattr(self, n)) for n in SPLIT_NAMES}
        d.update(protocol=self.protocol, seed=self.seed, **self.extra)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Splits":
        known = set(SPLIT_NAMES) | {"protocol", "seed"}
        return cls(
            **{n: tuple(d.get(n, ())) for n in SPLIT_NAMES},
            protocol=d.get("protocol", "random"),
            seed=d.get("seed"),
            extra={k: v for k, v in d.items() if k not in known},
        )


def write_splits(root: str | os.PathLike, splits: Splits) -> Path:
    """Write ``root/splits.json`` atomically."""
    out = Path(root) / SPLITS
    atomic_write_text(out, json.dumps(splits.to_dict(), indent=2) + "\n")
    return out


def load_splits(root: str | os.PathLike) -> Splits:
    """Read ``root/splits.json``; a missing or malformed file is a :class:`DatasetError`."""
    path = Path(root) / SPLITS
    if not path.is_file():
        raise DatasetError(f"{root}: no {SPLITS}; make one with `kws-prep split`")
    try:
        return Splits.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError, AttributeError) as e:
        raise DatasetError(f"{path}: malformed splits file ({e})") from e


def noise_files(root: str | os.PathLike) -> list[Path]:
    """Sorted background-noise recordings of a dataset folder (may be empty)."""
    d = Path(root) / NOISE_DIR
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if p.suffix.lower() in (".wav", ".flac", ".ogg"))
