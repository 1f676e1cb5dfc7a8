"""Google Speech Commands: fetch or take the archive, verify it, unpack it safely, index it.

After :func:`prepare_speech_commands`, ``OUT`` holds the extracted corpus (``WORD/*.wav``,
``validation_list.txt``, ``testing_list.txt``, ``_background_noise_/``) plus ``manifest.csv``,
``report.json`` and ``splits.json``.  :func:`index_speech_commands` indexes any folder in that
layout, including the built-in synthetic corpus.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from data_prep.archive import archive_info, download, safe_extract, verify_archive
from data_prep.manifest_builder import BuildResult, Candidate, Skip, build_manifest
from data_prep.sc_layout import TESTING_LIST, VALIDATION_LIST, clip_stem, parse_clip_name, read_split_list
from data_prep.splits import core_split, parnami_split, random_split
from kws_proto.data.dataset import NOISE_DIR, Splits, load_manifest, write_splits
from kws_proto.errors import ConfigError

_TAKE = re.compile(r"_nohash_(\d+)$")


def discover_speech_commands(root: str | os.PathLike) -> tuple[list[Candidate], list[Skip]]:
    """Candidate clips of a Speech Commands folder, and the files that cannot be clips.

    Keyword folders give ``WORD/SPEAKER_nohash_N.wav``; folders with a leading underscore
    (``_unknown_``) give ``WORD_SPEAKER_nohash_N.wav``; ``_background_noise_`` and top-level
    text files are not clips.  ``.wav.wav`` names are accepted.
    """
    root = Path(root)
    cands: list[Candidate] = []
    ignored: list[Skip] = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            if entry.suffix.lower() in (".wav", ".flac", ".ogg"):
                ignored.append(Skip(entry.name, "audio file outside any keyword folder"))
            continue
        if entry.name == NOISE_DIR:
            continue
        for f in sorted(p for p in entry.rglob("*") if p.is_file() and not p.name.startswith(".")):
            rel = f.relative_to(root).as_posix()
            if not f.name.lower().endswith(".wav"):
                ignored.append(Skip(rel, f"not a .wav clip ({f.suffix or 'no extension'})"))
                continue
            word, speaker = parse_clip_name(entry.name, f.name)
            if entry.name.startswith("_") and word == entry.name:
                ignored.append(Skip(rel, f"in {entry.name}/ but not named WORD_SPEAKER_nohash_N.wav"))
                continue
            cands.append(Candidate(f, rel, word, speaker, rel))
    return cands, ignored


def one_clip_per_speaker(cands: list[Candidate]) -> list[Candidate]:
    """Keep, for each (keyword, speaker), the take with the lowest ``_nohash_N`` (Parnami & Lee)."""
    best: dict[tuple[str, str], tuple[int, Candidate]] = {}
    out = []
    for c in cands:
        if not c.speaker:
            out.append(c)
            continue
        m = _TAKE.search(clip_stem(Path(c.rel).name))
        take = int(m.group(1)) if m else 0
        key = (c.keyword, c.speaker)
        if key not in best or take < best[key][0]:
            best[key] = (take, c)
    return sorted(out + [c for _, c in best.values()], key=lambda c: c.rel)


def index_speech_commands(
    root: str | os.PathLike,
    *,
    strict: bool = False,
    progress: bool = True,
    workers: int = 1,
    one_per_speaker: bool = False,
    source: str | None = None,
    extra: dict | None = None,
) -> BuildResult:
    """Write ``root/manifest.csv`` and ``root/report.json`` for a folder in Speech Commands layout."""
    root = Path(root)
    cands, ignored = discover_speech_commands(root)
    n_all = len(cands)
    if one_per_speaker:
        cands = one_clip_per_speaker(cands)
    info = {
        "layout": "speech_commands",
        "validation_list": len(read_split_list(root, VALIDATION_LIST)),
        "testing_list": len(read_split_list(root, TESTING_LIST)),
        "one_clip_per_speaker": one_per_speaker,
        "extra_takes_dropped": n_all - len(cands),
    }
    return build_manifest(root, cands, source=source or str(root), ignored=ignored, strict=strict,
                          workers=workers, progress=progress, extra={**info, **(extra or {})})


def protocol_split(root: str | os.PathLike, protocol: str, seed: int = 0, min_speakers: int = 1000) -> Splits:
    """The class split of a Speech Commands folder for ``protocol`` ("core", "parnami", "random")."""
    manifest = load_manifest(root)
    if protocol == "core":
        return core_split(manifest.keywords, seed=seed)
    if protocol == "parnami":
        return parnami_split(manifest, seed=seed, min_speakers=min_speakers)
    if protocol == "random":
        n = len(manifest.keywords)
        k = max(1, round(0.15 * n))
        return random_split(manifest.keywords, n_validation=k, n_test=k, seed=seed)
    raise ConfigError(f"--protocol {protocol!r} must be 'core', 'parnami', 'random' or 'none'")


def prepare_speech_commands(
    out: str | os.PathLike,
    version: int = 2,
    *,
    archive: str | os.PathLike | None = None,
    sha256: str | None = None,
    url: str | None = None,
    keep_archive: bool = False,
    strict: bool = False,
    protocol: str = "core",
    seed: int = 0,
    min_speakers: int = 1000,
    one_per_speaker: bool = False,
    workers: int = 2,
    progress: bool = True,
    timeout: float = 10.0,
) -> BuildResult:
    """Download (or take ``archive``), verify, extract into ``out`` and index Speech Commands.

    Parameters
    ----------
    out : path
        The dataset folder to create.
    version : {1, 2}
        Which release (v0.01: 30 words, v0.02: 35 words).
    archive : path, optional
        An archive already on disk; no download.
    sha256 : str, optional
        Expected SHA-256 instead of the published one (then the size is not checked) — for a
        mirror or a custom archive.
    url : str, optional
        Download from here instead of the official address.
    keep_archive : bool
        Keep a downloaded archive after extraction.
    protocol : {"core", "parnami", "random", "none"}
        Class split written to ``splits.json`` ("none": no split).
    """
    info = archive_info(version)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    downloaded = archive is None
    path = Path(archive) if archive is not None else out / info.filename
    if downloaded and not path.is_file():
        download(url or info.url, path, timeout=timeout, progress=progress)
    expected = sha256 or info.sha256
    verify_archive(path, expected, None if sha256 else info.size, progress=progress)
    safe_extract(path, out, progress=progress)
    if downloaded and not keep_archive:
        path.unlink()
    extra = {"version": version, "archive": {"file": path.name, "sha256": expected.lower()}}
    result = index_speech_commands(out, strict=strict, progress=progress, workers=workers,
                                   one_per_speaker=one_per_speaker,
                                   source=f"speech_commands_v0.0{version} ({path.name})", extra=extra)
    if protocol != "none":
        write_splits(out, protocol_split(out, protocol, seed=seed, min_speakers=min_speakers))
    return result
