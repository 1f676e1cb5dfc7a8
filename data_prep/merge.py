"""One dataset folder out of several: a base dataset plus extra training words from others.

The use is training on the built-in corpus together with some real speech (e.g. the Picovoice
wake words) while validating and testing exactly as on the base corpus.  ``OUT`` holds no audio:
each source is a symbolic link ``OUT/<name>`` to the source folder (absolute path), and every
manifest row is the source's row with its path under that link::

    OUT/base -> BASE                       manifest rows "base/<path>", BASE's split kept
    OUT/<extra name> -> EXTRA              manifest rows "<name>/<path>", every keyword a training class
    OUT/_background_noise_ -> BASE/_background_noise_   (when BASE has one)
    OUT/manifest.csv, splits.json, report.json

Speakers are prefixed with the source's name (``"<name>:<speaker>"``) so two corpora's speaker ids
never collide; unknown speakers stay ``""``.  A keyword in more than one source is a
:class:`~kws_proto.errors.DatasetError` naming it and the sources: merging it silently would put an
extra corpus's clips into the base's validation or test words, or join two different words.
The sources' clips were checked when their folders were built, so nothing is decoded again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

from data_prep.manifest_builder import REPORT
from kws_proto.data.dataset import (
    NOISE_DIR, Clip, Splits, load_manifest, load_splits, write_manifest, write_splits,
)
from kws_proto.errors import DatasetError
from kws_proto.util.atomic import atomic_path, atomic_write_text

BASE = "base"


def _link(out: Path, name: str, target: Path) -> None:
    """``out/name`` -> ``target`` (replacing an earlier link of the same name, never a folder)."""
    link = out / name
    if link.is_symlink():
        link.unlink()
    elif link.exists():
        raise DatasetError(f"{link}: exists and is not a link; choose an empty OUT folder")
    with atomic_path(link) as tmp:
        tmp.symlink_to(target.resolve(), target_is_directory=True)


def _names(extras: Sequence[Path]) -> list[str]:
    """Link names of the extra folders: their folder names, made unique and never ``base``."""
    names, seen = [], {BASE, NOISE_DIR}
    for p in extras:
        stem, name, n = p.resolve().name, p.resolve().name, 1
        while name in seen:
            n += 1
            name = f"{stem}-{n}"
        seen.add(name)
        names.append(name)
    return names


def merge_datasets(out: str | os.PathLike, base: str | os.PathLike,
                   extras: Sequence[str | os.PathLike]) -> dict:
    """Write ``out`` as ``base`` plus every keyword of ``extras`` as a training class.

    Parameters
    ----------
    out : path
        Dataset folder to write (created; may hold an earlier merge, which is replaced).
    base : path
        A prepared dataset folder with ``manifest.csv`` and ``splits.json``; its split is kept.
    extras : sequence of path
        Prepared dataset folders (``manifest.csv``; their splits are ignored) whose keywords all
        become training classes.

    Returns
    -------
    dict
        The report written to ``out/report.json``: each source's path, link, clip and keyword
        counts.

    Raises
    ------
    DatasetError
        A missing or malformed source, no extras, ``out`` inside a source, or a keyword found in
        more than one source.
    """
    out, base = Path(out), Path(base)
    extras = [Path(e) for e in extras]
    if not extras:
        raise DatasetError("merge needs at least one extra dataset folder")
    sources = [(BASE, base)] + list(zip(_names(extras), extras))
    for _, src in sources:
        if out.resolve() == src.resolve() or src.resolve() in out.resolve().parents:
            raise DatasetError(f"{out}: the merged folder must not be inside a source ({src})")
    manifests = {name: load_manifest(src) for name, src in sources}
    splits = load_splits(base)

    owner: dict[str, list[str]] = {}
    for name, src in sources:
        for kw in manifests[name].keywords:
            owner.setdefault(kw, []).append(str(src))
    shared = {kw: who for kw, who in owner.items() if len(who) > 1}
    if shared:
        listed = "; ".join(f"{kw!r} in {', '.join(who)}" for kw, who in sorted(shared.items()))
        raise DatasetError(f"keywords in more than one source, which merge cannot tell apart: {listed}")

    out.mkdir(parents=True, exist_ok=True)
    clips: list[Clip] = []
    report: dict = {"merge": {"sources": []}}
    for name, src in sources:
        _link(out, name, src)
        m = manifests[name]
        clips += [Clip(f"{name}/{c.path}", c.keyword, f"{name}:{c.speaker}" if c.speaker else "",
                       c.duration, c.sample_rate) for c in m.clips]
        report["merge"]["sources"].append({
            "name": name, "path": str(src.resolve()), "clips": len(m),
            "keywords": len(m.keywords), "role": "split kept" if name == BASE else "training words",
            "speakers": len({c.speaker for c in m.clips if c.speaker}),
        })
    noise = base / NOISE_DIR
    if noise.is_dir():
        _link(out, NOISE_DIR, noise)
    elif (out / NOISE_DIR).is_symlink():
        (out / NOISE_DIR).unlink()

    added = tuple(sorted(kw for name, m in manifests.items() if name != BASE for kw in m.keywords))
    merged = Splits(train=tuple(splits.train) + added, validation=splits.validation,
                    test=splits.test, unknown=splits.unknown,
                    protocol=f"{splits.protocol}+merge", seed=splits.seed,
                    extra={**splits.extra, "merged_training_words": list(added)})
    write_manifest(out, clips)
    write_splits(out, merged)
    report["counts"] = {"clips": len(clips), "keywords": len(owner),
                        "train": len(merged.train), "validation": len(merged.validation),
                        "test": len(merged.test), "unknown": len(merged.unknown)}
    atomic_write_text(out / REPORT, json.dumps(report, indent=2) + "\n")
    return report
