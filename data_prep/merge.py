"""One dataset folder out of several: a base dataset plus extra training words from others.

The use is training on the built-in corpus together with some real speech (e.g. the Picovoice
wake words) while validating and testing exactly as on the base corpus.  ``OUT`` holds no audio:
each source is a symbolic link ``OUT/<name>`` to the source folder (absolute path), and every
manifest row is the source's row with its path under that link::

    OUT/base -> BASE                       manifest rows "base/<path>", BASE's split kept
    OUT/<extra name> -> EXTRA              manifest rows "<name>/<path>", keywords as training classes
    OUT/_background_noise_ -> BASE/_background_noise_   (when BASE has one)
    OUT/manifest.csv, splits.json, report.json

Speakers are prefixed with the source's name (``"<name>:<speaker>"``) so two corpora's speaker ids
never collide and speaker-disjoint episodes stay speaker-disjoint; unknown speakers stay ``""``.

A word is a manifest keyword, compared exactly: ``"Hello"`` and ``"hello"`` are two words, as they
are two classes in any manifest (``kws-prep folder`` keeps folder names as they are, ``kws-prep
words`` writes transcript words in lower case).  Words of different sources that differ only in
case are listed in the report, not joined.  A word found in more than one source
(:func:`keyword_labels`):

- by default is **one class** holding every source's clips of it: a training word of BASE grows, a
  word two extras share (and BASE lacks) becomes one new training class;
- except a word BASE holds but does not train on (a validation, test or unknown word, or one in no
  split): the extras' clips of it are **left out**, counted per source and word in the report, so
  BASE's evaluation sets stay exactly BASE's;
- with ``keep_apart`` stays one class per source: each extra's clips of it become the training class
  ``"<name>:<word>"`` (a manifest label like the speakers', not a folder), BASE's keeps its name, and
  nothing is left out.  Note that an extra's copy of a BASE test word then trains the encoder on a
  word BASE tests (under another label); the report counts those clips.

The sources' clips were checked when their folders were built, so nothing is decoded again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

from data_prep.manifest_builder import REPORT
from kws_proto.data.dataset import (
    NOISE_DIR, Clip, Manifest, Splits, load_manifest, load_splits, write_manifest, write_splits,
)
from kws_proto.errors import DatasetError
from kws_proto.util.atomic import atomic_path, atomic_write_text

BASE = "base"
HELD_OUT = ("validation", "test", "unknown")  # BASE's words an extra must not add clips to


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


def _base_roles(splits: Splits, manifest: Manifest) -> dict[str, str]:
    """``{word: split}`` of every word BASE lists or holds; ``"none"`` for a word in no split."""
    roles = {kw: "none" for kw in manifest.keywords}
    for split in ("train",) + HELD_OUT:
        roles.update((kw, split) for kw in splits.classes(split))
    return roles


def keyword_labels(base_roles: dict[str, str], extras: dict[str, Sequence[str]],
                   keep_apart: bool = False) -> dict[str, dict[str, str | None]]:
    """The class each extra's words go to in the merged folder.

    Parameters
    ----------
    base_roles : dict of str to str
        BASE's words and their split (``"train"``, ``"validation"``, ``"test"``, ``"unknown"`` or
        ``"none"``).
    extras : dict of str to sequence of str
        Each extra's link name and its keywords, in the order given.
    keep_apart : bool
        Keep a word found in several sources apart: the extras' clips of it become
        ``"<name>:<word>"``.

    Returns
    -------
    dict of str to dict of str to (str or None)
        ``{name: {word: label}}``; ``None`` for a word left out (a BASE word that is not a
        training word, found in an extra, without ``keep_apart``).

    Raises
    ------
    DatasetError
        A ``"<name>:<word>"`` label that is already a keyword of some source.
    """
    count: dict[str, int] = {kw: 1 for kw in base_roles}
    for words in extras.values():
        for kw in set(words):
            count[kw] = count.get(kw, 0) + 1
    labels: dict[str, dict[str, str | None]] = {}
    for name, words in extras.items():
        labels[name] = {}
        for kw in words:
            if count[kw] == 1:
                labels[name][kw] = kw
            elif keep_apart:
                label = f"{name}:{kw}"
                if label in count:
                    raise DatasetError(f"--keep-apart would name {name}'s {kw!r} {label!r}, "
                                       f"which is already a keyword of a source")
                labels[name][kw] = label
            else:
                labels[name][kw] = None if base_roles.get(kw, "train") != "train" else kw
    return labels


def _case_only(words: dict[str, Sequence[str]]) -> list[dict]:
    """Words of different sources that are equal once lower-cased, and their sources."""
    forms: dict[str, dict[str, set[str]]] = {}  # lower-cased -> {spelling: sources}
    for name, kws in words.items():
        for kw in kws:
            forms.setdefault(kw.casefold(), {}).setdefault(kw, set()).add(name)
    found = []
    for _, spellings in sorted(forms.items()):
        names = set().union(*spellings.values())
        if len(spellings) > 1 and len(names) > 1:
            found.append({"words": sorted(spellings), "sources": sorted(names)})
    return found


def _check_sources(out: Path, sources: Sequence[tuple[str, Path]]) -> None:
    """Refuse ``out`` inside a source and a folder given twice."""
    seen: dict[Path, Path] = {}
    for _, src in sources:
        real = src.resolve()
        if out.resolve() == real or real in out.resolve().parents:
            raise DatasetError(f"{out}: the merged folder must not be inside a source ({src})")
        if real in seen:
            raise DatasetError(f"{src}: given twice (also as {seen[real]}); each source once")
        seen[real] = src


def _source_clips(name: str, m: Manifest, labels: dict[str, str | None] | None) -> list[Clip]:
    """``m``'s clips as rows of the merged manifest (``labels`` None: every keyword as it is)."""
    rows = []
    for c in m.clips:
        kw = c.keyword if labels is None else labels[c.keyword]
        if kw is not None:
            rows.append(Clip(f"{name}/{c.path}", kw, f"{name}:{c.speaker}" if c.speaker else "",
                             c.duration, c.sample_rate))
    return rows


def _source_report(name: str, src: Path, m: Manifest, rows: list[Clip],
                   labels: dict[str, str | None] | None, roles: dict[str, str]) -> dict:
    """One source's line of the report: its size, what was taken and what was left out."""
    per_word = {kw: len(ix) for kw, ix in m.indices_by_keyword().items()}
    left = {kw: per_word[kw] for kw, lab in (labels or {}).items() if lab is None}
    renamed = {kw: lab for kw, lab in (labels or {}).items() if lab not in (None, kw)}
    return {
        "name": name, "path": str(src.resolve()), "clips": len(m), "keywords": len(m.keywords),
        "role": "split kept" if labels is None else "training words",
        "speakers": len({c.speaker for c in m.clips if c.speaker}),
        "used_clips": len(rows), "used_keywords": len({c.keyword for c in rows}),
        "left_out": {"clips": sum(left.values()), "words": left},
        "renamed": renamed,
        "held_out_trained": {kw: per_word[kw] for kw in renamed if roles.get(kw) in HELD_OUT},
    }


def _shared(sources: list[dict], manifests: dict[str, Manifest], keep_apart: bool) -> dict:
    """Every word found in several sources: its sources and, per source, clips taken."""
    who: dict[str, list[str]] = {}
    sizes = {name: {kw: len(ix) for kw, ix in m.indices_by_keyword().items()}
             for name, m in manifests.items()}
    for name, per_word in sizes.items():
        for kw in per_word:
            who.setdefault(kw, []).append(name)
    out = {}
    for kw, names in sorted(who.items()):
        if len(names) > 1:
            left = [s["name"] for s in sources if kw in s["left_out"]["words"]]
            how = "left out" if left else "kept apart" if keep_apart else "joined"
            out[kw] = {"sources": names, "clips": {n: sizes[n][kw] for n in names}, "as": how}
    return out


def merge_datasets(out: str | os.PathLike, base: str | os.PathLike,
                   extras: Sequence[str | os.PathLike], keep_apart: bool = False) -> dict:
    """Write ``out`` as ``base`` plus the keywords of ``extras`` as training classes.

    Parameters
    ----------
    out : path
        Dataset folder to write (created; may hold an earlier merge, which is replaced).
    base : path
        A prepared dataset folder with ``manifest.csv`` and ``splits.json``; its split is kept.
    extras : sequence of path
        Prepared dataset folders (``manifest.csv``; their splits are ignored) whose keywords
        become training classes.
    keep_apart : bool
        A word found in several sources stays one class per source, the extras' named
        ``"<name>:<word>"``; by default it is one class, and the extras' clips of BASE's
        validation, test, unknown (or unassigned) words are left out (module docstring).

    Returns
    -------
    dict
        The report written to ``out/report.json``: each source's path, link, clip and keyword
        counts, what it gave and what was left out; the shared words; the merged counts.

    Raises
    ------
    DatasetError
        A missing or malformed source, no extras, a source given twice, ``out`` inside a source,
        or (``keep_apart``) a ``"<name>:<word>"`` label that is already a keyword.
    """
    out, base = Path(out), Path(base)
    extras = [Path(e) for e in extras]
    if not extras:
        raise DatasetError("merge needs at least one extra dataset folder")
    sources = [(BASE, base)] + list(zip(_names(extras), extras))
    _check_sources(out, sources)
    manifests = {name: load_manifest(src) for name, src in sources}
    splits = load_splits(base)
    roles = _base_roles(splits, manifests[BASE])
    labels = keyword_labels(roles, {n: m.keywords for n, m in manifests.items() if n != BASE},
                            keep_apart)

    out.mkdir(parents=True, exist_ok=True)
    clips: list[Clip] = []
    report: dict = {"merge": {"keep_apart": keep_apart, "sources": []}}
    for name, src in sources:
        _link(out, name, src)
        rows = _source_clips(name, manifests[name], labels.get(name))
        clips += rows
        report["merge"]["sources"].append(
            _source_report(name, src, manifests[name], rows, labels.get(name), roles))
    noise = base / NOISE_DIR
    if noise.is_dir():
        _link(out, NOISE_DIR, noise)
    elif (out / NOISE_DIR).is_symlink():
        (out / NOISE_DIR).unlink()

    merged = _merged_splits(splits, labels)
    write_manifest(out, clips)
    write_splits(out, merged)
    report["merge"]["shared"] = _shared(report["merge"]["sources"], manifests, keep_apart)
    report["merge"]["case_only"] = _case_only({n: m.keywords for n, m in manifests.items()})
    report["counts"] = _counts(report["merge"], clips, merged)
    atomic_write_text(out / REPORT, json.dumps(report, indent=2) + "\n")
    return report


def _merged_splits(splits: Splits, labels: dict[str, dict[str, str | None]]) -> Splits:
    """BASE's split with the extras' new classes appended to its training words."""
    new = {lab for per in labels.values() for lab in per.values() if lab is not None}
    added = tuple(sorted(new - set(splits.train)))
    return Splits(train=tuple(splits.train) + added, validation=splits.validation,
                  test=splits.test, unknown=splits.unknown,
                  protocol=f"{splits.protocol}+merge", seed=splits.seed,
                  extra={**splits.extra, "merged_training_words": list(added)})


def _counts(merge: dict, clips: list[Clip], merged: Splits) -> dict:
    """The merged folder's totals, and the shared words joined and left out."""
    shared = merge["shared"].values()
    extras = merge["sources"][1:]
    return {"clips": len(clips), "keywords": len({c.keyword for c in clips}),
            "train": len(merged.train), "validation": len(merged.validation),
            "test": len(merged.test), "unknown": len(merged.unknown),
            "shared_words": len(merge["shared"]),
            "joined_words": sum(s["as"] == "joined" for s in shared),
            "joined_clips": sum(n for s in shared if s["as"] == "joined"
                                for src, n in s["clips"].items() if src != BASE),
            "left_out_words": sum(s["as"] == "left out" for s in shared),
            "left_out_clips": sum(s["left_out"]["clips"] for s in extras),
            "held_out_trained_clips": sum(sum(s["held_out_trained"].values()) for s in extras)}
