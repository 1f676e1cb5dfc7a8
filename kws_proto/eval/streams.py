"""Spotting trials and their streams: which keywords a trial enrols from which clips, and the
running speech it is scored on (constructed from a prepared dataset's clips, no audio stored).

A trial (:func:`draw_trials`) is drawn from ``numpy.random.default_rng([seed, index])`` alone, so
trial ``i`` is the same whatever the number of trials and whatever model scores it; how it is
drawn and how its stream is built: :mod:`kws_proto.eval.spot_eval`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from data_prep.noise import colored_noise
from kws_proto.audio.loading import read_audio
from kws_proto.data.dataset import load_manifest, noise_files
from kws_proto.errors import ConfigError, DatasetError
from kws_proto.spot.detect import Event

TRIALS = 20
KEYWORDS = 3  # target keywords enrolled per trial
SHOTS = 5  # support clips per keyword
WORDS = 40  # words per stream
TARGET_RATIO = 0.25  # share of a stream's words that are targets
SEED = 0
#: Whose clips enrol a keyword when the manifest has speakers: one speaker's (the enrolling
#: user; every target from the same speaker), or several speakers' (``--shots`` speakers drawn
#: per trial, one clip of each per keyword: corpora where a speaker says each word once, like the
#: built-in one). Either way the stream has none of them.
SUPPORT_SPEAKERS = ("one", "several")
GAP_SECONDS = (0.3, 1.5)
TRIM_DB = 30.0
#: Threshold factors of the sweep: 2**-5 to 2**3 in steps of 2**(1/8), 1 among them.
FACTORS = tuple(float(f) for f in np.round(2.0 ** np.arange(-5.0, 3.0001, 0.125), 4))


@dataclass(frozen=True)
class Word:
    """One word of a stream: a manifest path (relative to the dataset), its keyword, and whether
    it is one of the trial's targets."""

    path: str
    keyword: str
    target: bool


@dataclass(frozen=True)
class Trial:
    """Everything a trial's enrolment and stream are made from (no audio)."""

    index: int
    keywords: tuple[str, ...]
    support: tuple[tuple[str, ...], ...]  # per keyword, its support clips (manifest paths)
    enrol_speaker: str | None
    words: tuple[Word, ...]
    gaps: tuple[float, ...]  # len(words) + 1 seconds: before each word and after the last
    noise_seed: int

    def to_dict(self) -> dict:
        d = asdict(self)
        d["keywords"] = list(self.keywords)
        d["support"] = {k: list(s) for k, s in zip(self.keywords, self.support)}
        d["words"] = [asdict(w) for w in self.words]
        d["gaps"] = [round(g, 4) for g in self.gaps]
        return d


def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ConfigError(f"--{name.replace('_', '-')}={value!r} must be an integer >= {low}")
    return int(value)


def check_options(trials, keywords, shots, words, target_ratio, seed, snr=None,
                  factors=FACTORS) -> None:
    """Raise :class:`ConfigError` naming the first bad option."""
    _check_int("trials", trials, 1)
    _check_int("keywords", keywords, 1)
    _check_int("shots", shots, 2)
    _check_int("words", words, 1)
    _check_int("seed", seed, 0)
    if not (isinstance(target_ratio, (int, float)) and 0 < target_ratio <= 1):
        raise ConfigError(f"--target-ratio={target_ratio!r} must be a share in (0, 1]")
    if round(target_ratio * words) < 1:
        raise ConfigError(f"--target-ratio={target_ratio} of --words={words} is no target word; "
                          "raise either")
    if snr is not None and not (isinstance(snr, (int, float)) and math.isfinite(snr)):
        raise ConfigError(f"--snr={snr!r} must be a finite number of dB")
    f = np.asarray(list(factors), dtype=float)
    if not len(f) or not np.all(np.isfinite(f)) or np.any(f <= 0):
        raise ConfigError(f"--factors={list(factors)} must be positive numbers")


class ClipPool:
    """The manifest's clips by keyword and speaker, and which files are readable."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.manifest = load_manifest(self.root)
        clips = self.manifest.clips
        speakers = {c.speaker for c in clips}
        self.by_speaker = "" not in speakers and len(speakers) >= 2
        self.keywords = self.manifest.keywords
        self.paths: dict[str, list[str]] = {}
        self.speaker_of = {c.path: c.speaker for c in clips}
        for c in clips:
            self.paths.setdefault(c.keyword, []).append(c.path)
        self._ok: dict[str, bool] = {}

    def readable(self, path: str) -> bool:
        if path not in self._ok:
            try:
                sf.info(str(self.root / path))
                self._ok[path] = True
            except (RuntimeError, sf.LibsndfileError):
                self._ok[path] = False
        return self._ok[path]

    def take(self, rng, candidates: list[str], n: int, what: str) -> list[str]:
        """``n`` readable paths of ``candidates`` in a random order."""
        out = []
        for i in rng.permutation(len(candidates)):
            if self.readable(candidates[i]):
                out.append(candidates[i])
                if len(out) == n:
                    return out
        raise DatasetError(f"{self.root}: {what} has {len(out)} readable clip(s), need {n}")


def draw_trials(data, trials: int = TRIALS, keywords: int = KEYWORDS, shots: int = SHOTS,
                words: int = WORDS, target_ratio: float = TARGET_RATIO,
                seed: int = SEED, support_speakers: str = "one") -> list[Trial]:
    """The seeded trials of a prepared dataset folder (module docstring: how one is drawn;
    ``support_speakers``: :data:`SUPPORT_SPEAKERS`)."""
    check_options(trials, keywords, shots, words, target_ratio, seed)
    if support_speakers not in SUPPORT_SPEAKERS:
        raise ConfigError(f"--support-speakers={support_speakers!r} must be one of "
                          f"{', '.join(SUPPORT_SPEAKERS)}")
    pool = data if isinstance(data, ClipPool) else ClipPool(Path(data))
    n_targets = int(round(target_ratio * words))
    need = keywords + (1 if n_targets < words else 0)
    if len(pool.keywords) < need:
        raise ConfigError(f"--keywords={keywords}: {pool.root} has {len(pool.keywords)} keywords; "
                          f"{keywords} targets{' and a non-target word' if need > keywords else ''}"
                          f" need {need}")
    return [_draw(pool, i, keywords, shots, words, n_targets, seed, support_speakers)
            for i in range(trials)]


def _several_speakers(pool: ClipPool, rng, targets, shots):
    """``shots`` speakers drawn by ``rng`` among those with clips of every target, one readable
    clip of each of them per target; returns the supports and the speakers."""
    names = sorted({pool.speaker_of[p] for p in pool.paths[targets[0]]})
    names = [s for s in names if all(any(pool.speaker_of[p] == s for p in pool.paths[k])
                                     for k in targets)]
    if len(names) < shots:
        raise DatasetError(f"{pool.root}: {len(names)} speakers have clips of each of {targets}; "
                           f"--shots={shots} with --support-speakers several needs {shots}")
    chosen = sorted(str(s) for s in rng.choice(names, shots, replace=False))
    support = []
    for k in targets:
        support.append(tuple(pool.take(rng, [p for p in pool.paths[k] if pool.speaker_of[p] == s],
                                       1, f"speaker {s}'s {k!r}")[0] for s in chosen))
    return support, set(chosen)


def _draw(pool: ClipPool, index, n_kw, shots, n_words, n_targets, seed,
          support_speakers: str = "one") -> Trial:
    rng = np.random.default_rng([seed, index])
    targets = sorted(str(k) for k in rng.choice(pool.keywords, n_kw, replace=False))
    others = [k for k in pool.keywords if k not in targets]
    speaker = None
    if pool.by_speaker and support_speakers == "several":
        support, used = _several_speakers(pool, rng, targets, shots)
        stream_pool = {k: [p for p in pool.paths[k] if pool.speaker_of[p] not in used]
                       for k in pool.keywords}
        return _stream(pool, rng, index, targets, others, tuple(support), ",".join(sorted(used)),
                       stream_pool, n_kw, n_words, n_targets)
    if pool.by_speaker:
        names = sorted({pool.speaker_of[p] for k in targets for p in pool.paths[k]})
        able = [s for s in names
                if all(sum(pool.speaker_of[p] == s for p in pool.paths[k]) >= shots
                       for k in targets)]
        if not able:
            raise DatasetError(f"{pool.root}: no speaker has {shots} clips of each of {targets} "
                               "(--support-speakers several enrols each from several speakers)")
        speaker = str(rng.choice(able))
    support, stream_pool = [], {}
    for k in pool.keywords:
        paths = pool.paths[k]
        if speaker is not None:
            own = [p for p in paths if pool.speaker_of[p] == speaker]
            stream_pool[k] = [p for p in paths if pool.speaker_of[p] != speaker]
            if k in targets:
                support.append(tuple(pool.take(rng, own, shots, f"speaker {speaker}'s {k!r}")))
        elif k in targets:
            chosen = pool.take(rng, paths, shots, f"keyword {k!r}")
            support.append(tuple(chosen))
            stream_pool[k] = [p for p in paths if p not in set(chosen)]
        else:
            stream_pool[k] = list(paths)
    return _stream(pool, rng, index, targets, others, tuple(support), speaker, stream_pool, n_kw,
                   n_words, n_targets)


def _stream(pool: ClipPool, rng, index, targets, others, support, speaker, stream_pool, n_kw,
            n_words, n_targets) -> Trial:
    """The trial's stream words and gaps, drawn by ``rng`` from ``stream_pool`` (per keyword)."""
    counts = {k: 0 for k in pool.keywords}
    slots = [targets[i % n_kw] for i in rng.permutation(n_targets)]  # balanced over targets
    slots += [str(rng.choice(others)) for _ in range(n_words - n_targets)]
    for k in slots:
        counts[k] += 1
    chosen = {k: pool.take(rng, stream_pool[k], counts[k], f"the stream side of {k!r}")
              for k in pool.keywords if counts[k]}
    words = [Word(chosen[k].pop(), k, k in targets) for k in slots]
    words = tuple(words[i] for i in rng.permutation(len(words)))
    gaps = tuple(float(g) for g in rng.uniform(*GAP_SECONDS, size=len(words) + 1))
    return Trial(index, tuple(targets), support, speaker, words, gaps,
                 int(rng.integers(2**31)))


@dataclass
class Stream:
    audio: np.ndarray  # [n] float32 at ``sample_rate``
    truth: list  # Event per target word (its trimmed span)
    sample_rate: int
    spans: list = field(default_factory=list)  # (start, end, Word) of every word

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate


GAP = "(gap)"  # a false alarm that overlaps no word of its stream


def false_alarm_words(false: list, spans: list) -> list[tuple[str, str, bool]]:
    """What each false alarm fell on: ``(keyword detected, word said, said word is a target)``
    per event of ``false`` (:class:`~kws_proto.spot.detect.Event`), the said word being the one
    of ``spans`` (``(start, end, word, is_target)`` in seconds: a stream's words, a sentence's
    aligned words) its span overlaps longest, or :data:`GAP` (and False) when it overlaps none."""
    out = []
    for e in false:
        overlap, said, target = max(((min(e.end, b) - max(e.start, a), w, t)
                                     for a, b, w, t in spans), key=lambda o: o[0],
                                    default=(0.0, GAP, False))
        out.append((e.keyword, said, bool(target)) if overlap > 0 else (e.keyword, GAP, False))
    return out


def trimmed_word(path, sr: int) -> np.ndarray:
    """A clip at ``sr`` Hz cut to its speech: ``librosa.effects.trim`` at ``TRIM_DB``."""
    import librosa  # lazy: slow to import, and only scoring needs it

    y = read_audio(path, sr)
    t, _ = librosa.effects.trim(y, top_db=TRIM_DB, frame_length=512, hop_length=128)
    return t if len(t) else y


def noise_for(root: Path, n: int, sr: int, rng) -> np.ndarray:
    """``n`` samples of the dataset's background noise (a random recording from a random offset,
    looped), else pink noise; RMS 1."""
    files = noise_files(root)
    if files:
        y = read_audio(files[int(rng.integers(len(files)))], sr).astype(np.float64)
        y = np.tile(y, -(-(n + len(y)) // len(y)))
        start = int(rng.integers(len(y) - n + 1))
        y = y[start:start + n]
    else:
        y = colored_noise(n, 1.0, rng)
    return y / (np.sqrt(np.mean(y**2)) + 1e-12)


def build_stream(trial: Trial, root, sr: int, snr: float | None = None) -> Stream:
    """The trial's stream at ``sr`` Hz with the true spans of its target words."""
    root = Path(root)
    parts, truth, spans, at = [], [], [], 0
    speech_power, speech_n = 0.0, 0
    for gap, word in zip(trial.gaps, trial.words):
        g = int(round(gap * sr))
        parts.append(np.zeros(g, np.float32))
        at += g
        y = trimmed_word(root / word.path, sr)
        parts.append(y)
        start, end = at / sr, (at + len(y)) / sr
        spans.append((start, end, word))
        if word.target:
            truth.append(Event(word.keyword, start, end))
        speech_power += float(np.sum(y.astype(np.float64) ** 2))
        speech_n += len(y)
        at += len(y)
    parts.append(np.zeros(int(round(trial.gaps[-1] * sr)), np.float32))
    audio = np.concatenate(parts).astype(np.float32)
    if snr is not None:
        rms = math.sqrt(speech_power / max(speech_n, 1))
        noise = noise_for(root, len(audio), sr, np.random.default_rng(trial.noise_seed))
        audio = (audio + rms * 10 ** (-snr / 20) * noise).astype(np.float32)
    return Stream(audio, truth, sr, spans)
