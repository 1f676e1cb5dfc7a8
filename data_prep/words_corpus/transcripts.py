"""Transcribed speech in four layouts, read as a list of :class:`Utterance` (no audio is decoded).

- ``tsv``: a tab-separated file with ``path``, ``text`` and ``speaker`` columns (and optionally
  ``utterance``, a name); paths are relative to the file's folder (absolute ones are kept).
- ``kaldi``: a folder with ``text`` (``UTT word word...``), ``wav.scp`` (``UTT PATH``; a relative
  path is taken from the folder) and ``utt2spk`` (``UTT SPEAKER``).  Piped commands
  (``UTT sox ... |``) and ``segments`` files are not read.
- ``librispeech``: ``SPEAKER/CHAPTER/SPEAKER-CHAPTER.trans.txt`` files (``ID TEXT`` lines) beside
  ``ID.flac``; the speaker is the folder name.
- ``commonvoice``: a ``*.tsv`` with ``path``, ``sentence`` and ``client_id`` columns, audio in
  ``clips/`` beside it.  Given the folder, ``validated.tsv`` is read (else every such ``*.tsv``).

An utterance with no speaker, no text or no audio path is not dropped silently: each reader also
returns it as a :class:`~data_prep.manifest_builder.Skip` naming it and the reason.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path

from data_prep.manifest_builder import Skip
from kws_proto.errors import ConfigError

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*'?")


@dataclass(frozen=True)
class Utterance:
    """One transcribed recording.

    Attributes
    ----------
    id : str
        Its name in the source (an utterance id or the audio path).
    audio : Path
        The audio file.
    text : str
        The transcript as written.
    speaker : str
        Who speaks (never empty).
    """

    id: str
    audio: Path
    text: str
    speaker: str


def words_of(text: str) -> list[str]:
    """The words of a transcript: lower case, punctuation other than inner apostrophes dropped.

    >>> words_of("Mister Quilter's  GOSPEL, too!")
    ['mister', "quilter's", 'gospel', 'too']
    """
    return [w.rstrip("'") for w in _TOKEN.findall(text.lower().replace("\u2019", "'"))]


def _utterance(uid: str, audio: Path | None, text: str, speaker: str) -> Utterance | Skip:
    if not speaker.strip():
        return Skip(uid, "no speaker")
    if not text.strip():
        return Skip(uid, "empty transcript")
    if audio is None:
        return Skip(uid, "no audio path")
    return Utterance(uid, audio, text.strip(), speaker.strip())


def _split(items: list[Utterance | Skip]) -> tuple[list[Utterance], list[Skip]]:
    return ([u for u in items if isinstance(u, Utterance)], [s for s in items if isinstance(s, Skip)])


def _read_rows(path: Path, needed: tuple[str, ...]) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = [c for c in needed if c not in (reader.fieldnames or [])]
        if missing:
            raise ConfigError(f"{path}: missing column(s) {missing} (has {reader.fieldnames})")
        return list(reader)


def read_tsv(path: str | os.PathLike) -> tuple[list[Utterance], list[Skip]]:
    """A plain TSV with ``path``, ``text`` and ``speaker`` columns (paths relative to it); an
    optional ``utterance`` column names the rows (else the path does)."""
    path = Path(path)
    rows = _read_rows(path, ("path", "text", "speaker"))
    return _split([_utterance(r.get("utterance") or r["path"] or f"{path.name}:{n}",
                              path.parent / r["path"] if r["path"] else None,
                              r["text"] or "", r["speaker"] or "")
                   for n, r in enumerate(rows, start=2)])


def _kaldi_table(path: Path) -> dict[str, str]:
    """``KEY VALUE...`` lines as ``{KEY: "VALUE..."}``."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    table = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, _, value = line.strip().partition(" ")
        if key:
            table[key] = value.strip()
    return table


def read_kaldi(folder: str | os.PathLike) -> tuple[list[Utterance], list[Skip]]:
    """A Kaldi data folder: ``text``, ``wav.scp`` and ``utt2spk``."""
    folder = Path(folder)
    if (folder / "segments").exists():
        raise ConfigError(f"{folder}: a Kaldi 'segments' file is not supported; give one recording per utterance")
    text = _kaldi_table(folder / "text")
    wavs = _kaldi_table(folder / "wav.scp")
    spk = _kaldi_table(folder / "utt2spk") if (folder / "utt2spk").is_file() else {}
    items: list[Utterance | Skip] = []
    for uid, words in text.items():
        wav = wavs.get(uid)
        if wav and wav.endswith("|"):
            items.append(Skip(uid, "wav.scp gives a command, not a file"))
            continue
        items.append(_utterance(uid, folder / wav if wav else None, words, spk.get(uid, "")))
    return _split(items)


def read_librispeech(folder: str | os.PathLike) -> tuple[list[Utterance], list[Skip]]:
    """LibriSpeech: ``*.trans.txt`` in ``SPEAKER/CHAPTER/`` folders, audio ``ID.flac`` beside."""
    items: list[Utterance | Skip] = []
    for trans in sorted(Path(folder).rglob("*.trans.txt")):
        speaker = trans.parent.parent.name
        for uid, words in _kaldi_table(trans).items():
            items.append(_utterance(uid, trans.parent / f"{uid}.flac", words, speaker))
    return _split(items)


def _common_voice_tsvs(src: Path) -> list[Path]:
    if src.is_file():
        return [src]
    if (src / "validated.tsv").is_file():
        return [src / "validated.tsv"]
    return sorted(p for p in src.glob("*.tsv") if {"path", "sentence", "client_id"} <= _columns(p))


def read_common_voice(src: str | os.PathLike) -> tuple[list[Utterance], list[Skip]]:
    """Common Voice: ``*.tsv`` with ``path``, ``sentence``, ``client_id``; audio under ``clips/``."""
    items: dict[str, Utterance | Skip] = {}
    for tsv in _common_voice_tsvs(Path(src)):
        for r in _read_rows(tsv, ("path", "sentence", "client_id")):
            name = r["path"] or ""
            items.setdefault(name, _utterance(name, tsv.parent / "clips" / name if name else None,
                                              r["sentence"] or "", r["client_id"] or ""))
    return _split(list(items.values()))


def _columns(tsv: Path) -> set[str]:
    with open(tsv, encoding="utf-8") as f:
        return set(f.readline().rstrip("\r\n").split("\t"))


READERS = {"tsv": read_tsv, "kaldi": read_kaldi, "librispeech": read_librispeech,
           "commonvoice": read_common_voice}
FORMATS = tuple(READERS)


def detect_format(src: str | os.PathLike) -> str:
    """The layout of ``src`` (one of :data:`FORMATS`), or a :class:`ConfigError` saying what is there."""
    src = Path(src)
    if src.is_file():
        cols = _columns(src)
        if {"path", "sentence", "client_id"} <= cols:
            return "commonvoice"
        if {"path", "text", "speaker"} <= cols:
            return "tsv"
        raise ConfigError(f"{src}: a TSV needs columns path, text, speaker (or Common Voice's "
                          f"path, sentence, client_id); it has {sorted(cols)}")
    if not src.is_dir():
        raise ConfigError(f"{src}: no such file or folder")
    if (src / "text").is_file() and (src / "wav.scp").is_file():
        return "kaldi"
    if next(src.rglob("*.trans.txt"), None) is not None:
        return "librispeech"
    if (src / "clips").is_dir() and _common_voice_tsvs(src):
        return "commonvoice"
    raise ConfigError(f"{src}: not a known layout (Kaldi text + wav.scp, LibriSpeech *.trans.txt, "
                      "Common Voice *.tsv + clips/); give a TSV file or --format")


def read_transcripts(src: str | os.PathLike, fmt: str = "auto") -> tuple[list[Utterance], list[Skip]]:
    """Every utterance of ``src`` in layout ``fmt`` (``"auto"``: :func:`detect_format`).

    Returns
    -------
    utterances : list of Utterance
    skipped : list of Skip
        Utterances without a speaker, a transcript or an audio path.
    """
    if fmt == "auto":
        fmt = detect_format(src)
    if fmt not in READERS:
        raise ConfigError(f"format={fmt!r} must be 'auto' or one of {FORMATS}")
    if fmt == "tsv" and Path(src).is_dir():
        raise ConfigError(f"{src}: the tsv format takes the TSV file, not a folder")
    return READERS[fmt](src)
