"""Running speech for the spotting benchmark: a corpus of read sentences with word timings, the
target words a trial may spot in it, and how detections are scored against the timings.

The corpus (speechocean762's layout, ``../shared/data/speechocean762``)::

    utterances/text.tsv            utterance, speaker, seconds, text (a header line)
    utterances/alignments.tsv      utterance, word, start, end (seconds; a header line)
    utterances/<speaker>/<utterance>.flac
    words/<word>/<speaker>_<n>.flac   clips of words, by other speakers (enrolment)

An utterance is scored only when its audio and its word timings agree: one with no audio file,
no alignment rows, or a word ending past its audio (by more than ``END_SLACK``) is skipped and
named in :attr:`SentenceCorpus.skipped` (one bad file must not sink 400 sentences; the result
says what was left out).  A missing ``text.tsv`` or ``alignments.tsv`` is an error naming it.

A trial (:func:`draw_sentence_trials`), drawn from ``numpy.random.default_rng([seed, index])``
alone, enrols ``keywords`` target words, each from ``shots`` clips of ``words/<word>/``, among
:func:`candidate_words`: words that occur in the scored sentences and have enough clips, at least
``min_letters`` letters long, and none of ``exclude`` (the encoders' training words:
:func:`training_words`).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

from data_prep.words import DEFAULT_WORDS, load_words_file
from kws_proto.data.dataset import load_manifest
from kws_proto.errors import ConfigError, DatasetError
from kws_proto.model.fusion import is_fusion, load_fusion
from kws_proto.model.gse_head import shipped_head
from kws_proto.model.pretrained import resolve_model
from kws_proto.spot.detect import Event, match_events
from kws_proto.spot.frozen import is_frozen

MIN_LETTERS = 4  # shorter alignment words ("the", "and", "a") are not targets
END_SLACK = 0.02  # seconds an aligned word may end past its audio (timings are rounded to 10 ms)
LARGE_WORDS = Path(__file__).resolve().parents[2] / "experiments" / "words" / "large.txt"
AUDIO_SUFFIXES = (".flac", ".wav", ".ogg")
BACKGROUND_FILES = 300  # audio files drawn (seeded) from each background folder


@dataclass
class Utterance:
    """One scored sentence: its audio file, length and aligned words ``(word, start, end)``."""

    name: str
    speaker: str
    path: Path
    seconds: float
    words: list[tuple[str, float, float]]

    def truth(self, keywords) -> list[Event]:
        """The aligned occurrences of ``keywords`` as events."""
        return [Event(w, s, e) for w, s, e in self.words if w in keywords]


@dataclass
class SentenceCorpus:
    """The scored utterances of a corpus folder, what was skipped and why, and its word clips."""

    root: Path
    utterances: list[Utterance]
    skipped: list[dict] = field(default_factory=list)  # {"utterance", "why"}
    clips: dict[str, list[str]] = field(default_factory=dict)  # word -> paths under root

    @property
    def seconds(self) -> float:
        return sum(u.seconds for u in self.utterances)

    @property
    def occurrences(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for u in self.utterances:
            for w, _, _ in u.words:
                out[w] = out.get(w, 0) + 1
        return out

    @property
    def speakers(self) -> set[str]:
        return {u.speaker for u in self.utterances}


def _rows(path: Path, columns: tuple[str, ...]) -> list[dict]:
    if not path.is_file():
        raise DatasetError(f"{path}: no such file (the sentence corpus needs it)")
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    if rows and not set(columns) <= set(rows[0]):
        raise DatasetError(f"{path}: needs the columns {', '.join(columns)} in its header line")
    return rows


def load_sentences(root) -> SentenceCorpus:
    """The corpus at ``root`` (module docstring): its scored utterances and its word clips.

    Raises
    ------
    DatasetError
        ``text.tsv`` or ``alignments.tsv`` is missing or lacks a column, a timing is not a
        number, or no utterance is left to score.
    """
    root = Path(root)
    utt_dir = root / "utterances"
    text = _rows(utt_dir / "text.tsv", ("utterance", "speaker", "seconds"))
    align = _rows(utt_dir / "alignments.tsv", ("utterance", "word", "start", "end"))
    words: dict[str, list[tuple[str, float, float]]] = {}
    for i, r in enumerate(align, start=2):
        try:
            span = (r["word"].strip().lower(), float(r["start"]), float(r["end"]))
        except (TypeError, ValueError):
            raise DatasetError(f"{utt_dir / 'alignments.tsv'} line {i}: start and end must be "
                               f"numbers, got {r['start']!r}, {r['end']!r}") from None
        words.setdefault(r["utterance"], []).append(span)
    speaker = {r["utterance"]: r["speaker"] for r in text}
    kept, skipped = [], []
    for name in list(speaker) + [u for u in words if u not in speaker]:
        u, why = _utterance(utt_dir, name, speaker.get(name), words.get(name))
        if u is None:
            skipped.append({"utterance": name, "why": why})
        else:
            kept.append(u)
    if not kept:
        raise DatasetError(f"{utt_dir}: no utterance with audio and word timings to score")
    return SentenceCorpus(root, kept, skipped, word_clips(root / "words"))


def _utterance(utt_dir: Path, name: str, speaker, spans):
    """``(Utterance, "")``, or ``(None, why)`` when it cannot be scored."""
    if speaker is None:
        return None, "in alignments.tsv but not in text.tsv (no speaker, no audio file)"
    path = utt_dir / speaker / f"{name}.flac"
    if not path.is_file():
        return None, f"no audio file {path}"
    if not spans:
        return None, "no word timings in alignments.tsv"
    try:
        seconds = sf.info(str(path)).duration
    except (RuntimeError, sf.LibsndfileError) as e:
        return None, f"{path} cannot be read ({e})"
    bad = [(w, s, e) for w, s, e in spans if e > seconds + END_SLACK or not 0 <= s <= e]
    if bad:
        w, s, e = bad[0]
        return None, (f"word {w!r} aligned at {s:.2f}-{e:.2f} s does not fit its audio "
                      f"({seconds:.2f} s)")
    return Utterance(name, speaker, path, seconds, sorted(spans, key=lambda x: x[1])), ""


def audio_files(folder: Path) -> list[Path]:
    """The audio files (``AUDIO_SUFFIXES``) in ``folder`` and below, sorted."""
    return sorted(p for p in Path(folder).rglob("*")
                  if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())


def word_clips(words_dir: Path) -> dict[str, list[str]]:
    """``{word: [paths relative to the corpus root]}`` of ``words/<word>/*`` audio files."""
    if not words_dir.is_dir():
        raise DatasetError(f"{words_dir}: no such folder (the enrolment clips, words/<word>/)")
    out = {}
    for d in sorted(p for p in words_dir.iterdir() if p.is_dir()):
        files = [f"words/{d.name}/{f.name}" for f in audio_files(d)]
        if files:
            out[d.name.lower()] = files
    return out


def clip_speaker(path: str) -> str:
    """The speaker of a ``words/<word>/<speaker>_<n>.flac`` clip."""
    return Path(path).stem.rsplit("_", 1)[0]


# -- which words a trial may spot -----------------------------------------------------------------
def builtin_words() -> frozenset[str]:
    """The built-in synthetic corpus's vocabularies: the default word list and, when the source
    tree is there, ``experiments/words/large.txt`` (the shipped encoder's)."""
    words = set(DEFAULT_WORDS)
    if LARGE_WORDS.is_file():
        words |= set(load_words_file(LARGE_WORDS, exclude=frozenset()))
    return frozenset(words)


def training_words(model: str) -> tuple[frozenset[str], str]:
    """The words ``model`` was trained on, as far as its run's ``config.yaml`` says, and how that
    was found: a synthetic corpus's word file (or the default list), a prepared dataset's
    keywords; the head on the speech embedding (``gse-head``) its corpora's words less those it
    left out; frozen embeddings (``gse``, ``ewn``) say they are unknown; fused members are
    followed."""
    if str(model) == "gse-head":
        return _head_words()
    if is_frozen(model):
        return frozenset(), f"{model}: a frozen embedding; its training words are not known"
    if is_fusion(model):
        found = [training_words(m.model) for m in load_fusion(model).members]
        return frozenset().union(*(w for w, _ in found)), "; ".join(s for _, s in found)
    cfg_path = resolve_model(model) / "config.yaml"
    if not cfg_path.is_file():
        return frozenset(), f"{model}: no config.yaml, training words unknown"
    data = (yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}).get("data", {})
    return _data_words(model, data)


def _head_words() -> tuple[frozenset[str], str]:
    """The shipped head's training words: each corpus's, less the words its config left out."""
    config = shipped_head().record.get("config", {})
    found = [_data_words("gse-head", c) for c in config.get("corpora", ())]
    left_out = {w.lower() for w in config.get("exclude_words", ())}
    words = frozenset().union(*(w for w, _ in found)) - left_out
    return words, "; ".join(s for _, s in found) or "gse-head: no corpora recorded"


def _data_words(model: str, data: dict) -> tuple[frozenset[str], str]:
    """The words of one data section of a config (a synthetic corpus's or a dataset's)."""
    if data.get("source", "synth") == "synth":
        f = data.get("synth_words_file") or ""
        if not f:
            return frozenset(DEFAULT_WORDS), f"{model}: synthetic corpus, the default word list"
        for p in (Path(f), LARGE_WORDS.parents[2] / f):
            if p.is_file():
                return frozenset(load_words_file(p, exclude=frozenset())), f"{model}: {f}"
        return frozenset(), f"{model}: its word file {f} is not here, training words unknown"
    return _dataset_words(model, Path(data.get("dataset", "")))


def _dataset_words(model: str, dataset: Path) -> tuple[frozenset[str], str]:
    try:
        return frozenset(k.lower() for k in load_manifest(dataset).keywords), f"{model}: {dataset}"
    except (DatasetError, OSError):
        return frozenset(), f"{model}: its dataset {dataset} is not here, training words unknown"


def letters(word: str) -> int:
    return sum(c.isalpha() for c in word)


def candidate_words(corpus: SentenceCorpus, exclude, shots: int,
                    min_letters: int = MIN_LETTERS) -> list[str]:
    """Words (sorted) occurring in the scored sentences with at least ``shots`` clips in
    ``words/``, at least ``min_letters`` letters long and not in ``exclude``."""
    occ = corpus.occurrences
    return sorted(w for w in occ if w not in exclude and letters(w) >= min_letters
                  and len(corpus.clips.get(w, ())) >= shots)


@dataclass(frozen=True)
class SentenceTrial:
    """A trial's targets and their support clips (paths under the corpus root)."""

    index: int
    keywords: tuple[str, ...]
    support: tuple[tuple[str, ...], ...]

    def to_dict(self) -> dict:
        return {"index": self.index, "keywords": list(self.keywords),
                "support": {k: list(s) for k, s in zip(self.keywords, self.support)}}


def draw_sentence_trials(candidates: list[str], clips: dict[str, list[str]], trials: int,
                         keywords: int, shots: int, seed: int) -> list[SentenceTrial]:
    """``trials`` trials of ``keywords`` targets of ``candidates``, each with ``shots`` clips."""
    if len(candidates) < keywords:
        raise ConfigError(f"--keywords={keywords}: only {len(candidates)} candidate word(s) (in "
                          "the sentences, with --shots clips, long enough, not trained on)")
    out = []
    for i in range(trials):
        rng = np.random.default_rng([seed, i])
        targets = sorted(str(k) for k in rng.choice(candidates, keywords, replace=False))
        support = tuple(tuple(clips[k][j] for j in sorted(rng.choice(len(clips[k]), shots,
                                                                     replace=False)))
                        for k in targets)
        out.append(SentenceTrial(i, tuple(targets), support))
    return out


# -- scoring --------------------------------------------------------------------------------------
def score_utterances(detected: list[list[Event]], truth: list[list[Event]]) -> dict:
    """Hits, occurrences and false alarms over utterances (``detected[i]`` against
    ``truth[i]``, :func:`kws_proto.spot.detect.match_events`: a detection hits an aligned
    occurrence of its keyword that it overlaps, each occurrence once; every other detection is
    a false alarm), per keyword its ``background`` false alarms: detections overlapping no
    occurrence of their own keyword (a second detection of one occurrence is not one), and
    ``false``: each utterance's false alarms (events)."""
    hits = targets = fa = 0
    background: dict[str, int] = {}
    false = []
    for dets, true in zip(detected, truth):
        r = match_events(dets, true)
        hits, targets, fa = hits + r["hits"], targets + len(true), fa + r["false_alarms"]
        false.append(r["false"])
        for e in dets:
            if not any(t.keyword == e.keyword and e.start < t.end and t.start < e.end
                       for t in true):
                background[e.keyword] = background.get(e.keyword, 0) + 1
    return {"hits": hits, "targets": targets, "false_alarms": fa, "background": background,
            "false": false}


def free_seconds(utterances: list[Utterance], keyword: str) -> float:
    """Seconds of ``utterances`` outside the aligned spans of ``keyword``."""
    return sum(u.seconds - sum(e - s for w, s, e in u.words if w == keyword) for u in utterances)
