"""A keyword dataset folder cut out of transcribed speech by forced alignment.

Every utterance is read (:mod:`.transcripts`), decoded at 16 kHz and aligned (:mod:`.align`); each
aligned word becomes a candidate clip: the word with ``pad_ms`` either side (within the recording).
Then words are chosen (``keep``, ``exclude``), at most ``max_per_speaker`` clips of a word per speaker
are drawn with ``seed``, and words with fewer than ``min_clips`` clips are dropped.  Written::

    OUT/<word>/<speaker>_<utterance>_<i>.wav   16-bit, 16 kHz; i = the word's place in the sentence
    OUT/manifest.csv, splits.json ("test-only": every word a test class; see `kws-prep split`)
    OUT/alignments.tsv     utterance, word, start, end (s) of every aligned word, chosen or not
    OUT/report.json        counts, every skipped utterance and unusable clip with its reason

An utterance without a speaker or a transcript, with a word neither the dictionary nor the lexicon
knows, with unreadable audio, or whose transcript does not align is named in the report, skipped
and counted; the build fails (:class:`~kws_proto.errors.DatasetError`) only when no clip is left.
"""

from __future__ import annotations

import csv
import io
import os
import re
import sys
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from data_prep.manifest_builder import Skip, write_report
from data_prep.splits import all_test_split
from data_prep.wav import write_wav
from data_prep.words_corpus.align import SR, Aligner, AlignmentError, WordTiming
from data_prep.words_corpus.transcripts import Utterance, read_transcripts, words_of
from kws_proto.audio.loading import read_audio, word_problem
from kws_proto.data.dataset import Clip, write_manifest, write_splits
from kws_proto.errors import AudioError, ConfigError, DatasetError
from kws_proto.util.atomic import atomic_write_text

ALIGNMENTS = "alignments.tsv"


@dataclass(frozen=True)
class WordOptions:
    """Which aligned words become clips.

    Attributes
    ----------
    pad_ms : float
        Audio kept before and after each word, in milliseconds.
    min_clips : int
        A word with fewer clips (after ``max_per_speaker``) is dropped.
    max_per_speaker : int
        At most this many clips of a word per speaker (0: all), drawn with ``seed``.
    keep : frozenset of str, optional
        Only these words (None: every word).
    exclude : frozenset of str
        Never these words.
    seed : int
    """

    pad_ms: float = 50.0
    min_clips: int = 1
    max_per_speaker: int = 0
    keep: frozenset[str] | None = None
    exclude: frozenset[str] = field(default_factory=frozenset)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.pad_ms < 0 or self.min_clips < 1 or self.max_per_speaker < 0:
            raise ConfigError(f"pad_ms={self.pad_ms} must be >= 0, min_clips={self.min_clips} >= 1 "
                              f"and max_per_speaker={self.max_per_speaker} >= 0")


@dataclass(frozen=True)
class AlignedWord:
    """An aligned word of an utterance: ``index`` is its place in the transcript; ``problem`` why
    its padded clip cannot hold a word (silent, too short), or None."""

    utterance: Utterance
    index: int
    timing: WordTiming
    problem: str | None = None

    @property
    def rel(self) -> str:
        stem = _safe(f"{self.utterance.speaker}_{Path(self.utterance.id).with_suffix('').as_posix()}")
        return f"{self.timing.word}/{stem}_{self.index}.wav"


def _safe(name: str) -> str:
    return re.sub(r"[^\w.-]+", "-", name).strip("-")


def _span(t: WordTiming, pad_ms: float, n: int) -> slice:
    pad = pad_ms / 1000.0
    return slice(max(0, int(round((t.start - pad) * SR))), min(n, int(round((t.end + pad) * SR))))


def align_all(utterances: list[Utterance], aligner: Aligner, pad_ms: float, progress: bool = True):
    """Align every utterance.

    Returns
    -------
    candidates : list of AlignedWord
        Every aligned word (those with a ``problem`` too).
    skipped : list of Skip
        ``"REASON: detail"`` per utterance that gave no alignment.
    """
    candidates: list[AlignedWord] = []
    skipped: list[Skip] = []
    for u in tqdm(utterances, desc="aligning", unit="utt", disable=not progress, file=sys.stderr, leave=False):
        words = words_of(u.text)
        missing = aligner.missing(words)
        if missing:
            skipped.append(Skip(u.id, f"not in the dictionary: {' '.join(missing)} (give --lexicon)"))
            continue
        try:
            y = read_audio(u.audio, SR)  # [n] float32
            timings = aligner.align(y, words)
        except AudioError as e:
            skipped.append(Skip(u.id, f"unusable audio: {e}"))
            continue
        except AlignmentError as e:
            skipped.append(Skip(u.id, f"did not align: {e}"))
            continue
        candidates += [AlignedWord(u, i, t, word_problem(y[_span(t, pad_ms, y.shape[0])], SR))
                       for i, t in enumerate(timings)]
    return candidates, skipped


def choose(candidates: list[AlignedWord], opts: WordOptions) -> tuple[list[AlignedWord], dict[str, str]]:
    """The candidates that become clips, and every word left out with its reason."""
    dropped: dict[str, str] = {}
    by_word_speaker: dict[tuple[str, str], list[AlignedWord]] = defaultdict(list)
    for c in candidates:
        w = c.timing.word
        if c.problem:
            continue
        if w in opts.exclude:
            dropped[w] = "excluded"
        elif opts.keep is not None and w not in opts.keep:
            dropped[w] = "not in --words"
        else:
            by_word_speaker[(w, c.utterance.speaker)].append(c)
    rng = np.random.default_rng(opts.seed)
    by_word: dict[str, list[AlignedWord]] = defaultdict(list)
    for key in sorted(by_word_speaker):
        group = by_word_speaker[key]
        if opts.max_per_speaker and len(group) > opts.max_per_speaker:
            picked = sorted(rng.choice(len(group), opts.max_per_speaker, replace=False))
            group = [group[i] for i in picked]
        by_word[key[0]] += group
    chosen = []
    for w, group in sorted(by_word.items()):
        if len(group) < opts.min_clips:
            dropped[w] = f"fewer than {opts.min_clips} clips: {len(group)}"
        else:
            chosen += group
    return chosen, dict(sorted(dropped.items()))


def write_clips(chosen: list[AlignedWord], out: Path, pad_ms: float) -> list[Clip]:
    """Cut every chosen word out of its recording (decoded once more) into ``out/<rel>``."""
    by_utt: dict[Utterance, list[AlignedWord]] = defaultdict(list)
    for c in chosen:
        by_utt[c.utterance].append(c)
    clips = []
    for u, group in by_utt.items():
        y = read_audio(u.audio, SR)  # [n] float32
        for c in group:
            piece = y[_span(c.timing, pad_ms, y.shape[0])]  # [m]
            (out / c.rel).parent.mkdir(parents=True, exist_ok=True)
            write_wav(out / c.rel, piece, SR)
            clips.append(Clip(c.rel, c.timing.word, u.speaker, piece.shape[0] / SR, SR))
    return clips


def write_alignments(out: Path, candidates: list[AlignedWord]) -> Path:
    """``out/alignments.tsv``: every aligned word, in utterance order."""
    buf = io.StringIO()
    w = csv.writer(buf, delimiter="\t", lineterminator="\n")
    w.writerow(("utterance", "word", "start", "end"))
    for c in sorted(candidates, key=lambda c: (c.utterance.id, c.index)):
        w.writerow((c.utterance.id, c.timing.word, f"{c.timing.start:.2f}", f"{c.timing.end:.2f}"))
    atomic_write_text(out / ALIGNMENTS, buf.getvalue())
    return out / ALIGNMENTS


def _reason_counts(skips: list[Skip]) -> dict[str, int]:
    return dict(sorted(Counter(s.reason.split(":")[0] for s in skips).items()))


def build_words_corpus(src: str | os.PathLike, out: str | os.PathLike, *, fmt: str = "auto",
                       lexicon: dict[str, str] | None = None, options: WordOptions = WordOptions(),
                       progress: bool = True) -> dict:
    """Make ``out`` a keyword dataset folder of the words spoken in ``src``.

    Parameters
    ----------
    src : path
        Transcribed speech (see :mod:`data_prep.words_corpus.transcripts`).
    out : path
        The dataset folder to write.
    fmt : str
        ``"auto"`` or one of :data:`~data_prep.words_corpus.transcripts.FORMATS`.
    lexicon : dict, optional
        Pronunciations of words the dictionary lacks (:func:`~data_prep.words_corpus.align.read_lexicon`).
    options : WordOptions
    progress : bool

    Returns
    -------
    report : dict
        What ``out/report.json`` holds.

    Raises
    ------
    DatasetError
        No clip is left (the report, naming every skipped utterance, is written first).
    """
    out = Path(out)
    utterances, skipped = read_transcripts(src, fmt)
    total = len(utterances) + len(skipped)
    candidates, unaligned = align_all(utterances, Aligner(lexicon), options.pad_ms, progress)
    skipped += unaligned
    chosen, dropped = choose(candidates, options)
    out.mkdir(parents=True, exist_ok=True)
    write_alignments(out, candidates)
    report = _report(src, fmt, options, total, skipped, candidates, chosen, dropped)
    write_report(out, report)
    if not chosen:
        raise DatasetError(f"{src}: no usable clip ({total} utterances, {len(skipped)} skipped: {_reason_counts(skipped)}; "
                           f"{len(dropped)} words dropped); see {out / 'report.json'}")
    clips = write_clips(chosen, out, options.pad_ms)
    write_manifest(out, clips)
    write_splits(out, all_test_split(sorted({c.keyword for c in clips})))
    return report


def _report(src, fmt, options, total, skipped, candidates, chosen, dropped) -> dict:
    n_aligned = len({c.utterance.id for c in candidates})
    unusable = [c for c in candidates if c.problem]
    opts = {k: (sorted(v) if isinstance(v, frozenset) else v) for k, v in asdict(options).items()}
    return {
        "source": str(src),
        "format": fmt,
        "options": opts,
        "counts": {
            "utterances": total,
            "aligned": n_aligned,
            "skipped": len(skipped),
            "skipped_by_reason": _reason_counts(skipped),
            "aligned_words": len(candidates),
            "unusable_clips": len(unusable),
            "clips": len(chosen),
            "words_kept": len({c.timing.word for c in chosen}),
            "words_dropped": len(dropped),
            "words_dropped_by_reason": _reason_counts([Skip(w, r) for w, r in dropped.items()]),
            "speakers": len({c.utterance.speaker for c in chosen}),
            "clips_per_keyword": dict(sorted(Counter(c.timing.word for c in chosen).items())),
        },
        "skipped": [{"utterance": s.path, "reason": s.reason} for s in skipped],
        "unusable_clips": [{"clip": c.rel, "reason": c.problem} for c in unusable],
        "words_dropped": dropped,
    }
