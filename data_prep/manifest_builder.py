"""Build a dataset folder's manifest: every candidate file is read once, broken ones are reported.

Every source (synthetic corpus, Speech Commands, any folder) ends here.  A file that cannot be read
— corrupt, empty, truncated, non-finite, not audio — or cannot hold a word — silent, too short — is
named in ``report.json`` with its reason, skipped and counted, and the rest is kept; ``strict=True`` turns any such file into a
:class:`~kws_proto.errors.DatasetError` (the report is still written, no manifest is).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

import soundfile as sf
from tqdm import tqdm

from kws_proto.audio.loading import check_word, read_audio
from kws_proto.data.dataset import Clip, write_manifest
from kws_proto.errors import AudioError, DatasetError
from kws_proto.util.atomic import atomic_write_text

REPORT = "report.json"
PARALLEL_MIN = 1000  # fewer files are read in-process: starting workers costs ~1 s


@dataclass(frozen=True)
class Candidate:
    """A file that should become one manifest row.

    Attributes
    ----------
    src : Path
        The file to read.
    rel : str
        Its manifest path, relative to the dataset folder (``/``-separated).
    keyword, speaker : str
        Its class and speaker (``""`` when unknown).
    origin : str
        How the report names it (e.g. its path inside the source folder).
    """

    src: Path
    rel: str
    keyword: str
    speaker: str = ""
    origin: str = ""


@dataclass(frozen=True)
class Skip:
    """A file left out, and why."""

    path: str
    reason: str


@dataclass
class BuildResult:
    """What :func:`build_manifest` kept and left out."""

    clips: list[Clip]
    skipped: list[Skip]
    ignored: list[Skip]
    report: dict = field(default_factory=dict)


def _reason(err: Exception, src: Path) -> str:
    msg = str(err)
    prefix = f"{src}: "
    return msg[len(prefix):] if msg.startswith(prefix) else msg


def check_clip(cand: Candidate) -> Clip:
    """Decode ``cand.src`` fully at its own rate and describe it as a manifest row.

    Raises
    ------
    AudioError
        The file is unreadable, corrupt, empty or holds non-finite samples, or it cannot hold
        a word: silent or too short (:func:`kws_proto.audio.loading.word_problem`).
    """
    try:
        rate = sf.info(str(cand.src)).samplerate
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as e:
        raise AudioError(f"{cand.src}: unreadable or corrupt audio ({e})") from e
    y = check_word(read_audio(cand.src, sr=rate), rate, cand.src)  # [n] float32, no resampling
    return Clip(cand.rel, cand.keyword, cand.speaker, y.shape[0] / rate, rate)


def _run_one(process: Callable[[Candidate], Clip], cand: Candidate) -> Clip | Skip:
    try:
        return process(cand)
    except AudioError as e:
        return Skip(cand.origin or cand.rel, _reason(e, cand.src))


def _results(process, candidates: list[Candidate], workers: int):
    job = partial(_run_one, process)
    if workers <= 1 or len(candidates) < PARALLEL_MIN:
        yield from map(job, candidates)
        return
    with process_pool(workers) as pool:
        yield from pool.imap(job, candidates, chunksize=64)


def process_pool(workers: int):
    """A ``multiprocessing`` pool: forked (fast, works from any ``__main__``) unless TensorFlow is
    loaded in this process, whose threads a fork can deadlock; then spawned."""
    fork_ok = sys.platform == "linux" and "tensorflow" not in sys.modules
    return multiprocessing.get_context("fork" if fork_ok else "spawn").Pool(workers)


def write_report(root: str | os.PathLike, report: dict) -> Path:
    """Write ``root/report.json`` atomically."""
    out = Path(root) / REPORT
    atomic_write_text(out, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return out


def build_manifest(
    root: str | os.PathLike,
    candidates: list[Candidate],
    *,
    source: str,
    ignored: list[Skip] | None = None,
    strict: bool = False,
    process: Callable[[Candidate], Clip] = check_clip,
    workers: int = 1,
    progress: bool = True,
    extra: dict | None = None,
) -> BuildResult:
    """Read every candidate once and write ``root/manifest.csv`` and ``root/report.json``.

    Parameters
    ----------
    root : path
        The dataset folder (exists).
    candidates : list of Candidate
        Files meant to become rows.
    source : str
        What was indexed (recorded in the report).
    ignored : list of Skip, optional
        Files that were never candidates (not audio, not in a keyword folder), for the report.
    strict : bool
        Fail with :class:`DatasetError` when any candidate is unreadable.
    process : callable ``Candidate -> Clip``
        Reads (and possibly converts) one file; raises :class:`AudioError` for a broken one.
        Default :func:`check_clip`.
    workers : int
        Processes reading files in parallel (``process`` must be picklable when > 1).
    progress : bool
        Show a progress bar on stderr.
    extra : dict, optional
        More fields for the report.

    Returns
    -------
    result : BuildResult
    """
    root = Path(root)
    ignored = list(ignored or [])
    clips: list[Clip] = []
    skipped: list[Skip] = []
    bar = tqdm(total=len(candidates), desc="indexing", unit="file", disable=not progress,
               file=sys.stderr, leave=False)
    for res in _results(process, candidates, workers):
        (skipped if isinstance(res, Skip) else clips).append(res)
        bar.update(1)
    bar.close()
    report = {
        "source": source,
        "strict": strict,
        "counts": {
            "found": len(candidates),
            "kept": len(clips),
            "skipped": len(skipped),
            "silent_or_short": sum(s.reason.startswith(("silent", "too short")) for s in skipped),
            "ignored": len(ignored),
            "keywords": len({c.keyword for c in clips}),
            "speakers": len({c.speaker for c in clips if c.speaker}),
            "clips_per_keyword": dict(sorted(Counter(c.keyword for c in clips).items())),
        },
        "skipped": [{"path": s.path, "reason": s.reason} for s in sorted(skipped, key=lambda s: s.path)],
        "ignored": [{"path": s.path, "reason": s.reason} for s in sorted(ignored, key=lambda s: s.path)],
        **(extra or {}),
    }
    write_report(root, report)
    if strict and skipped:
        names = ", ".join(s.path for s in skipped[:10]) + (" ..." if len(skipped) > 10 else "")
        raise DatasetError(
            f"--strict: {len(skipped)} unusable file(s) under {source}: {names} "
            f"(reasons in {root / REPORT})"
        )
    if not clips:
        raise DatasetError(f"{source}: no usable clip found ({len(skipped)} unusable; see {root / REPORT})")
    write_manifest(root, clips)
    return BuildResult(clips=clips, skipped=skipped, ignored=ignored, report=report)
