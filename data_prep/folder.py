"""Any folder of keyword recordings as a dataset folder.

Recognised in ``SRC``:

- ``SRC/<keyword>/**/*.{wav,flac,ogg}``: keyword = folder name (spaces allowed); the speaker comes
  from a Speech Commands name (``SPEAKER_nohash_N``) or a ``<keyword>_SPEAKER_N`` name, else "";
- ``SRC/{label}_{speaker}_{n}.{wav,...}`` flat files (FSDD): keyword = label, speaker = speaker;
- ``SRC/_background_noise_/``: copied as noise recordings; ``_unknown_``-style folders as in
  Speech Commands.  Anything else is listed as ignored in ``report.json``.

The audio goes into ``OUT/<keyword>/`` so manifest paths stay relative to ``OUT``, in one of
:data:`MODES`: ``convert`` (default) decodes every file once and writes it as a 16-bit WAV at
``sr``, cutting a recording longer than ``duration`` seconds to its loudest ``duration`` seconds
(shorter ones are not padded); ``copy``, ``link`` (hard link, a copy across file systems) and
``symlink`` keep the original files.  In every mode each file is fully decoded once; a broken one
is reported and skipped.  The manifest records each recording's original duration and sample rate.
"""

from __future__ import annotations

import os
import re
import shutil
from functools import partial
from pathlib import Path

import soundfile as sf

from data_prep.manifest_builder import BuildResult, Candidate, Skip, build_manifest, check_clip
from data_prep.sc_layout import NOHASH, parse_clip_name
from data_prep.splits import all_test_split
from data_prep.wav import write_wav
from kws_proto.audio.loading import check_word, loudest_start, read_audio
from kws_proto.data.dataset import NOISE_DIR, Clip, write_splits
from kws_proto.errors import AudioError, ConfigError

AUDIO_EXTS = (".wav", ".flac", ".ogg")
MODES = ("convert", "copy", "link", "symlink")
FLAT_NAME = re.compile(r"^(?P<label>.+)_(?P<speaker>[^_]+)_(?P<take>\d+)$")


def _is_audio(p: Path) -> bool:
    return p.suffix.lower() in AUDIO_EXTS


def _speaker(keyword: str, stem: str) -> str:
    if NOHASH in stem:
        return stem.split(NOHASH, 1)[0]
    m = FLAT_NAME.match(stem)
    return m.group("speaker") if m and m.group("label") == keyword else ""


def discover_folder(src: str | os.PathLike, convert: bool = True) -> tuple[list[Candidate], list[Skip], list[Path]]:
    """Candidate clips of ``src``, the files that cannot be clips, and its noise recordings.

    Parameters
    ----------
    src : path
        The source folder.
    convert : bool
        Name the outputs ``.wav`` (conversion) instead of keeping the original file names.
    """
    src = Path(src)
    cands: list[Candidate] = []
    ignored: list[Skip] = []
    noises: list[Path] = []
    taken: set[str] = set()

    def add(f: Path, keyword: str, speaker: str, inner: str) -> None:
        name = inner
        if convert and f.suffix.lower() != ".wav":
            # a.flac next to a.wav becomes a.flac.wav; a.wav keeps its name
            name = f"{inner}.wav" if f.with_suffix(".wav").exists() else Path(inner).with_suffix(".wav").as_posix()
        rel = f"{keyword}/{name}"
        if rel in taken:
            ignored.append(Skip(f.relative_to(src).as_posix(), f"another file is already stored as {rel}"))
            return
        taken.add(rel)
        cands.append(Candidate(f, rel, keyword, speaker, f.relative_to(src).as_posix()))

    for entry in sorted(src.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file():
            m = FLAT_NAME.match(entry.stem) if _is_audio(entry) else None
            if m:
                add(entry, m.group("label"), m.group("speaker"), entry.name)
            else:
                why = ("audio file neither in a keyword folder nor named LABEL_SPEAKER_N"
                       if _is_audio(entry) else "not an audio file")
                ignored.append(Skip(entry.name, why))
            continue
        files = sorted(p for p in entry.rglob("*") if p.is_file() and not p.name.startswith("."))
        if entry.name == NOISE_DIR:
            noises += [p for p in files if _is_audio(p)]
            continue
        for f in files:
            inner = f.relative_to(entry).as_posix()
            if not _is_audio(f):
                ignored.append(Skip(f.relative_to(src).as_posix(), f"not an audio file ({f.suffix or 'no extension'})"))
            elif entry.name.startswith("_"):
                word, speaker = parse_clip_name(entry.name, f.name)
                if word == entry.name:
                    ignored.append(Skip(f.relative_to(src).as_posix(),
                                        f"in {entry.name}/ but not named WORD_SPEAKER_nohash_N"))
                else:
                    add(f, word, speaker, inner)
            else:
                add(f, entry.name, _speaker(entry.name, f.stem), inner)
    return cands, ignored, noises


def convert_clip(cand: Candidate, out: str, sr: int, duration: float) -> Clip:
    """Decode ``cand.src``, keep its loudest ``duration`` s when longer, write a 16-bit WAV at ``sr``."""
    try:
        info = sf.info(str(cand.src))
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as e:
        raise AudioError(f"{cand.src}: unreadable or corrupt audio ({e})") from e
    y = check_word(read_audio(cand.src, sr), sr, cand.src)  # [m] float32 at sr
    original = y.shape[0] / sr
    n = int(round(sr * duration)) if duration > 0 else 0
    if n and y.shape[0] > n:
        start = loudest_start(y, n, hop=max(1, sr // 100))
        y = y[start : start + n]  # [n]
    dst = Path(out) / cand.rel
    dst.parent.mkdir(parents=True, exist_ok=True)
    write_wav(dst, y, sr)
    return Clip(cand.rel, cand.keyword, cand.speaker, original, info.samplerate)


def place_clip(cand: Candidate, out: str, mode: str) -> Clip:
    """Check ``cand.src`` by decoding it, then copy, hard-link or symlink it to ``out/cand.rel``."""
    clip = check_clip(cand)
    dst = Path(out) / cand.rel
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.unlink(missing_ok=True)
    if mode == "symlink":
        dst.symlink_to(cand.src.resolve())
    elif mode == "link":
        try:
            os.link(cand.src, dst)
        except OSError:  # another file system: copy
            shutil.copy2(cand.src, dst)
    else:
        shutil.copy2(cand.src, dst)
    return clip


def index_folder(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    mode: str = "convert",
    sr: int = 16000,
    duration: float = 1.0,
    strict: bool = False,
    workers: int = 2,
    progress: bool = True,
) -> BuildResult:
    """Make ``out`` a dataset folder of the recordings in ``src``.

    Parameters
    ----------
    src, out : path
        Source folder and the dataset folder to write (not inside ``src``).
    mode : {"convert", "copy", "link", "symlink"}
        How the audio gets into ``out`` (see the module docstring).
    sr : int
        Sample rate of converted clips.
    duration : float
        Converted clips longer than this keep their loudest ``duration`` seconds; 0 keeps all.
    strict : bool
        Fail on any unreadable file instead of reporting and skipping it.

    Returns
    -------
    result : BuildResult
        A "test-only" split (every keyword a test class) is written too; change it with
        ``kws-prep split``.
    """
    src, out = Path(src), Path(out)
    if mode not in MODES:
        raise ConfigError(f"mode={mode!r} must be one of {MODES}")
    if not src.is_dir():
        raise ConfigError(f"{src}: no such folder")
    if duration < 0 or sr <= 0:
        raise ConfigError(f"duration={duration} must be >= 0 and sr={sr} positive")
    if out.resolve() == src.resolve() or out.resolve().is_relative_to(src.resolve()):
        raise ConfigError(f"output folder {out} must not be {src} or inside it")
    cands, ignored, noises = discover_folder(src, convert=mode == "convert")
    out.mkdir(parents=True, exist_ok=True)
    if noises:
        (out / NOISE_DIR).mkdir(exist_ok=True)
        for p in noises:
            shutil.copy2(p, out / NOISE_DIR / p.name)
    if mode == "convert":
        process = partial(convert_clip, out=str(out), sr=sr, duration=duration)
    else:
        process = partial(place_clip, out=str(out), mode=mode)
    extra = {"audio": mode, "noise_files": len(noises)}
    if mode == "convert":
        extra.update(stored_sample_rate=sr, max_duration=duration, crop="loudest")
    result = build_manifest(out, cands, source=str(src), ignored=ignored, strict=strict,
                            process=process, workers=workers, progress=progress, extra=extra)
    write_splits(out, all_test_split(sorted({c.keyword for c in result.clips})))
    return result
