"""The built-in corpus: English words spoken by eSpeak NG voices, in Speech Commands layout.

Each speaker (accent × voice variant × speed × pitch, see :mod:`data_prep.speakers`) says each
word once; optionally so do ``flite_speakers`` CMU Flite voice settings (:mod:`data_prep.flite`,
a system package whose voices are built from real speakers' recordings).  A clip is made by
synthesising the word, resampling it to ``sr``, trimming leading and trailing silence, applying a
mild random gain and placing it at a random offset inside a ``duration``-second clip, written
as ``WORD/SPEAKERHASH_nohash_0.wav`` (16-bit).  A word longer than ``duration`` at the speaker's
speed is re-synthesised faster (up to twice, never beyond 450 words/min for eSpeak NG or a
duration stretch of 0.4 for Flite); one that still does not fit, or that the
synthesiser fails on, is dropped, named and counted in ``report.json``.  Everything random
comes from ``seed``: clip (word ``i``, speaker ``j``; Flite speakers are numbered after the
eSpeak NG ones, which they therefore leave unchanged) draws from ``default_rng([seed, i, j])``,
and each speaker is spoken by a fresh eSpeak NG process, so the
corpus is the same byte for byte whatever the number of workers.

A speaker's setting (``Voice``, ``FliteVoice``) names its ``ENGINE``, the
``speaker_key`` its id hashes, and how to say a word ``faster``; :data:`ENGINES` gives each
engine's synthesiser.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soxr
from tqdm import tqdm

from data_prep.espeak import get_synthesizer
from data_prep.flite import draw_flite_speakers, get_flite
from data_prep.manifest_builder import BuildResult
from data_prep.noise import write_noises
from data_prep.sc_layout import write_split_lists
from data_prep.speakers import draw_speakers, speaker_id
from data_prep.splits import random_split
from data_prep.speech_commands import index_speech_commands
from data_prep.wav import write_wav
from data_prep.words import DEFAULT_WORDS, check_words
from kws_proto.data.dataset import MANIFEST, NOISE_DIR, write_splits
from kws_proto.errors import ConfigError, KwsError

#: Each engine's synthesiser, by the ``ENGINE`` of a voice setting.
ENGINES = {"espeak": get_synthesizer, "flite": get_flite}
SILENCE_DB = -35.0  # frames this far below the loudest are silence
MARGIN_S = 0.02  # silence kept around a trimmed word
INCOMPLETE = ".incomplete"  # present while a build runs; a rerun replaces such a folder


@dataclass(frozen=True)
class SynthConfig:
    """Size and shape of the built-in corpus.

    Attributes
    ----------
    n_words : int or None
        Words used; ``None`` = all of ``words``.  A subset is a seeded pick.
    n_speakers : int
        eSpeak NG speakers (voice settings); each says every word once.
    flite_speakers : int
        Flite speakers besides them (0-65; needs the system's ``flite``).
    seed : int
        Fixes words, speakers, offsets, gains, noise and the class split.
    words : tuple of str or None
        The vocabulary; ``None`` = :data:`data_prep.words.DEFAULT_WORDS`.
    sr : int
        Sample rate of the clips.
    duration : float
        Clip length in seconds.
    gain_db : (float, float)
        Range of the peak level of a word, dB below full scale.
    noise_seconds : float
        Length of each background-noise recording.
    workers : int
        Synthesis processes (each runs its own eSpeak NG).
    """

    n_words: int | None = 200
    n_speakers: int = 50
    seed: int = 0
    flite_speakers: int = 0
    words: tuple[str, ...] | None = None
    sr: int = 16000
    duration: float = 1.0
    gain_db: tuple[float, float] = (-12.0, -1.0)
    noise_seconds: float = 30.0
    workers: int = 2

    def vocabulary(self) -> list[str]:
        """The words of the corpus, sorted."""
        words = check_words(self.words if self.words is not None else DEFAULT_WORDS)
        if self.n_words is None:
            return sorted(words)
        if not 1 <= self.n_words <= len(words):
            raise ConfigError(f"words={self.n_words} must be in [1, {len(words)}] (the list's size)")
        rng = np.random.default_rng([self.seed, 0x5EED])
        return sorted(words[i] for i in rng.permutation(len(words))[: self.n_words])


def trim_silence(y: np.ndarray, sr: int, margin: float = MARGIN_S) -> np.ndarray:
    """Cut leading and trailing frames quieter than :data:`SILENCE_DB` below the loudest one.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]

    Returns
    -------
    y : np.ndarray [shape=(m,)], m <= n
    """
    hop = max(1, sr // 100)
    n_frames = y.shape[0] // hop
    if n_frames == 0:
        return y
    frames = y[: n_frames * hop].reshape(n_frames, hop)  # [frames, hop]
    rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))  # [frames]
    loud = np.flatnonzero(rms > rms.max() * 10 ** (SILENCE_DB / 20))
    if loud.size == 0:
        return y[:0]
    pad = int(margin * sr)
    return y[max(0, loud[0] * hop - pad) : min(y.shape[0], (loud[-1] + 1) * hop + pad)]


def spoken(synth, word: str, voice, sr: int, max_len: int, seed: int) -> tuple[np.ndarray | str, object]:
    """The trimmed word at ``sr`` (re-synthesised faster when longer than ``max_len`` samples), or
    the reason it cannot be made, and the voice setting that spoke it."""
    for _ in range(3):
        try:
            pcm = synth.synthesize(word, voice, seed=seed)  # int16 at synth.sample_rate
        except KwsError as err:  # the synthesiser failed on this word: drop it, keep the rest
            pcm = str(err)
        if isinstance(pcm, str):
            return f"dropped: {pcm}", voice
        y = soxr.resample(pcm.astype(np.float32) / 32768.0, synth.sample_rate, sr, quality="HQ")
        y = trim_silence(y, sr)
        if y.shape[0] == 0:
            return "dropped: the synthesiser produced no sound", voice
        if y.shape[0] <= max_len:
            return y, voice
        faster = voice.faster(y.shape[0] / max_len)
        if faster is None:
            break
        voice = faster
    return f"dropped: still longer than the clip at its fastest ({voice})", voice


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (Flite runs as child processes)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _speak_speaker(job: tuple) -> tuple[list[tuple[str, str]], float]:
    """Write every word of one speaker; returns ``(word, status)`` for each clip and the CPU
    seconds it took.

    ``job = (out, words, j, voice, cfg)``: word ``i`` of the sorted vocabulary and speaker ``j``
    seed the clip's randomness.
    """
    cpu0 = _cpu_seconds()
    out, words, j, voice, cfg = job
    synth = ENGINES[voice.ENGINE]()
    n = int(round(cfg.sr * cfg.duration))
    sid = speaker_id(voice)
    results = []
    for i, word in enumerate(words):
        rng = np.random.default_rng([cfg.seed, i, j])
        y, used = spoken(synth, word, voice, cfg.sr, n, seed=int(rng.integers(2**31)))
        if isinstance(y, str):
            results.append((word, y))
            continue
        peak_db = rng.uniform(*cfg.gain_db)
        y = y * (10 ** (peak_db / 20) / max(float(np.max(np.abs(y))), 1e-6))
        clip = np.zeros(n, dtype=np.float32)
        start = int(rng.integers(0, n - y.shape[0] + 1))
        clip[start : start + y.shape[0]] = y
        path = Path(out) / word / f"{sid}_nohash_0.wav"
        write_wav(path, clip, cfg.sr)
        results.append((word, "sped up" if used != voice else "ok"))
    return results, _cpu_seconds() - cpu0


def _describe(v) -> dict:
    """A speaker's setting as report.json records it (an eSpeak NG one without its engine, as
    corpora built before the other engines record it)."""
    return asdict(v) if v.ENGINE == "espeak" else {"engine": v.ENGINE, **asdict(v)}


def fresh_process_pool(workers: int):
    """A pool whose every task runs in a newly started process with a pristine eSpeak NG.

    eSpeak NG carries state from one utterance to the next (see :mod:`data_prep.espeak`), so each
    speaker is synthesised by its own fresh process: forked from a clean fork server (which never
    synthesises) where available, else spawned.  The corpus is then the same byte for byte
    whatever the number of workers or what the calling process spoke before.
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["data_prep.synth"])
    else:
        ctx = multiprocessing.get_context("spawn")
    return ctx.Pool(workers, maxtasksperchild=1)


def build_synth(
    out: str | os.PathLike, cfg: SynthConfig = SynthConfig(), progress: bool = True, overwrite: bool = False
) -> BuildResult:
    """Synthesise the corpus into ``out`` and write its manifest, report, lists and split.

    Parameters
    ----------
    out : path
        A new or empty folder; with ``overwrite``, a previous dataset folder (one holding a
        ``manifest.csv``) is deleted first.  A folder left by an interrupted build (it still
        holds ``.incomplete``) is always replaced.
    cfg : SynthConfig
    progress : bool
        Show a progress bar on stderr.
    overwrite : bool
        Replace an existing dataset folder.

    Returns
    -------
    result : BuildResult
        ``result.report["synth"]`` holds the settings, the speakers and the timing.
    """
    t0 = time.perf_counter()
    words = cfg.vocabulary()
    voices = draw_speakers(cfg.n_speakers, seed=cfg.seed) + draw_flite_speakers(cfg.flite_speakers, cfg.seed)
    backend = get_synthesizer().backend  # fails early and clearly when eSpeak NG is missing
    if cfg.flite_speakers:
        backend += f" + {get_flite().backend}"  # likewise for Flite
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        unfinished = (out / INCOMPLETE).is_file()  # an interrupted build of ours: start again
        if not (unfinished or (overwrite and (out / MANIFEST).is_file())):
            raise ConfigError(
                f"{out} is not empty: choose a new folder, or pass --overwrite to replace a "
                "previous dataset folder (one with a manifest.csv)"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / INCOMPLETE).write_text("kws-prep synth is writing this folder\n")
    for w in words:
        (out / w).mkdir(parents=True, exist_ok=True)
    jobs = [(str(out), words, j, v, cfg) for j, v in enumerate(voices)]
    workers = max(1, min(cfg.workers, len(jobs)))
    status: list[tuple[str, str, str]] = []
    with fresh_process_pool(workers) as pool, tqdm(total=len(words) * len(voices), desc="synthesising",
                                                   unit="clip", disable=not progress, file=sys.stderr) as bar:
        noise = pool.apply_async(write_noises, (out / NOISE_DIR, cfg.seed, cfg.sr, cfg.noise_seconds))
        cpu = 0.0
        for job, (res, seconds) in zip(jobs, pool.imap(_speak_speaker, jobs)):
            status += [(w, speaker_id(job[3]), s) for w, s in res]
            cpu += seconds
            bar.update(len(res))
        noise.get()
    t_synth = time.perf_counter() - t0
    rels = sorted(f"{w}/{sid}_nohash_0.wav" for w, sid, s in status if not s.startswith("dropped"))
    lists = write_split_lists(out, rels)
    dropped = [{"word": w, "speaker": sid, "reason": s} for w, sid, s in status if s.startswith("dropped")]
    info = {
        "backend": backend,
        "seed": cfg.seed,
        "words": words,
        "speakers": {speaker_id(v): _describe(v) for v in voices},
        "flite_speakers": cfg.flite_speakers,
        "clips_written": len(rels),
        "sped_up": sum(s == "sped up" for _, _, s in status),
        "dropped": dropped,
        "speaker_lists": lists,
        "workers": workers,
        "synthesis_seconds": round(t_synth, 2),
        "synthesis_cpu_seconds": round(cpu, 2),
    }
    result = index_speech_commands(out, progress=progress, workers=workers,
                                   source=f"built-in eSpeak NG corpus (seed {cfg.seed})",
                                   extra={"synth": info})
    k = max(1, round(0.1 * len(words))) if len(words) >= 3 else 0
    write_splits(out, random_split(words, n_validation=k, n_test=k, seed=cfg.seed))
    (out / INCOMPLETE).unlink()
    return result
