"""Keywords enrolled in context: each support clip also embedded said between two other words.

A keyword spotted in running speech shares its 1 s window with the end of the word before it and
the start of the word after it; isolated support clips never show that.  :func:`context_views`
makes ``k`` more views of each support clip: its clip (the 0 ms view) with the end of one
neighbour's speech before its own and the start of another's after it, both scaled to its level
(:func:`kws_proto.audio.neighbours.between`; one seed fixes the neighbours and the gaps).  They
join the clip's own views, so their mean moves toward the keyword as running speech shows it.
The neighbours are clips of other words: files drawn by :func:`draw_neighbours` (a seeded draw of
at most ``NEIGHBOURS``), or the ones a model ships (:data:`SHIPPED`, written by
:func:`save_neighbours`: the speech of each clip, 16-bit FLAC inside an ``.npz``).

That mean becomes the keyword's twin (:class:`kws_proto.spot.bank.Twin`), cut
``CONTEXT_SHIFT`` cohort units looser than the keyword, whose own views lie that much
farther from it (:func:`kws_proto.spot.enrolment.enrol_keyword`; the default enrolment:
:func:`~kws_proto.spot.enrolment.context_rule`).  Measured: experiments/spotting.md, "Keywords
enrolled in context" and "A twin in context: the default enrolment".
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from kws_proto.audio.neighbours import between, speech_extent
from kws_proto.errors import ConfigError
from kws_proto.util.atomic import atomic_write_bytes

CONTEXT_VIEWS = 3  # views in context a support clip gets (measured: 3 and 9)
NEIGHBOURS = 300  # neighbour clips an enrolment draws from
SEED_SALT = 17  # the views' draw: default_rng([seed, SEED_SALT])
NEIGHBOUR_SALT = 10**6 + 1  # the neighbour files' draw: default_rng([seed, NEIGHBOUR_SALT])
SHIPPED = "neighbours.npz"  # a model folder's neighbour clips (the default enrolment's)
FORMAT = 1


def draw_neighbours(paths, n: int = NEIGHBOURS, seed: int = 0) -> list:
    """At most ``n`` of ``paths`` in a seeded random order (all of them when fewer)."""
    paths = list(paths)
    order = np.random.default_rng([seed, NEIGHBOUR_SALT]).permutation(len(paths))
    return [paths[i] for i in order[:n]]


def context_views(spotter, clips: np.ndarray, neighbours: np.ndarray, k: int,
                  seed: int = 0) -> np.ndarray:
    """Embeddings of ``k`` views of each of ``clips [n, samples]`` said between the ends of two
    of ``neighbours [m, samples']`` (two different ones, drawn with ``seed``): ``[n, k, d]``."""
    if k < 1:
        raise ConfigError(f"context={k!r}: give at least 1 view in context")
    if len(neighbours) < 2:
        raise ConfigError(f"context views need at least 2 neighbour clips, got {len(neighbours)}")
    rng = np.random.default_rng([seed, SEED_SALT])
    views = np.stack([[_between_two(c, neighbours, rng) for _ in range(k)]
                      for c in np.asarray(clips, np.float32)])
    return spotter._embed_views(views)


def _between_two(clip: np.ndarray, neighbours, rng: np.random.Generator) -> np.ndarray:
    before, after = rng.choice(len(neighbours), 2, replace=False)
    return between(clip, neighbours[before], neighbours[after], rng)


def save_neighbours(clips, sample_rate: int, path: str | os.PathLike, source: str) -> Path:
    """Write the speech of each of ``clips`` (1-D float arrays at ``sample_rate``; cut to its
    speech, :func:`~kws_proto.audio.neighbours.speech_extent`, and scaled to full range, since
    :func:`~kws_proto.audio.neighbours.between` scales a neighbour to the keyword's level) as
    16-bit FLAC inside one ``.npz`` with their lengths and a header (atomically)."""
    pieces = []
    for c in clips:
        speech = np.asarray(c, np.float32)[slice(*speech_extent(c))]
        peak = float(np.abs(speech).max()) if len(speech) else 0.0
        pieces.append(np.round(speech * (32767.0 / peak if peak > 0 else 0.0)).astype(np.int16))
    if len(pieces) < 2:
        raise ConfigError(f"{path}: neighbours need at least 2 clips, got {len(pieces)}")
    flac = io.BytesIO()
    sf.write(flac, np.concatenate(pieces), sample_rate, format="FLAC", subtype="PCM_16")
    header = {"format": FORMAT, "sample_rate": int(sample_rate), "clips": len(pieces),
              "source": source}
    out = io.BytesIO()
    np.savez(out, flac=np.frombuffer(flac.getvalue(), np.uint8),
             lengths=np.array([len(p) for p in pieces], np.int64),
             header=np.frombuffer(json.dumps(header).encode(), np.uint8))
    atomic_write_bytes(path, out.getvalue())
    return Path(path)


def load_neighbours(path: str | os.PathLike, sample_rate: int) -> list[np.ndarray]:
    """The clips :func:`save_neighbours` wrote, float32 in [-1, 1]; refused (naming ``path``)
    when unreadable or at another rate than ``sample_rate``."""
    try:
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(bytes(z["header"]).decode())
            lengths = z["lengths"]
            audio, rate = sf.read(io.BytesIO(bytes(z["flac"])), dtype="float32")
    except (OSError, KeyError, ValueError, RuntimeError, sf.LibsndfileError) as e:
        raise ConfigError(f"{path}: not a neighbours file ({e})") from None
    if header.get("format") != FORMAT or rate != sample_rate or int(lengths.sum()) != len(audio):
        raise ConfigError(f"{path}: neighbours of format {header.get('format')} at {rate} Hz "
                          f"({int(lengths.sum())} of {len(audio)} samples); this model needs "
                          f"format {FORMAT} at {sample_rate} Hz")
    return np.split(audio, np.cumsum(lengths)[:-1])


def shipped_neighbours(model_dir: str | os.PathLike) -> Path | None:
    """``model_dir``'s :data:`SHIPPED` file, or None."""
    path = Path(model_dir) / SHIPPED
    return path if path.is_file() else None
