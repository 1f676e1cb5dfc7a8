"""Keywords enrolled in context: each support clip also embedded said between two other words.

A keyword spotted in running speech shares its 1 s window with the end of the word before it and
the start of the word after it; isolated support clips never show that.  :func:`context_views`
makes ``k`` more views of each support clip: its clip (the 0 ms view) with the end of one
neighbour's speech before its own and the start of another's after it, both scaled to its level
(:func:`kws_proto.audio.neighbours.between`; one seed fixes the neighbours and the gaps).  They
join the clip's own views, so the prototype moves toward the keyword as running speech shows
it.  The neighbours are clips of other words (:func:`draw_neighbours`: a seeded draw of at most
``NEIGHBOURS`` files).

A normalised keyword enrolled in context is cut ``CONTEXT_SHIFT`` cohort deviations looser than
the level of one enrolled without (:func:`kws_proto.spot.enrolment.enrol_keyword`): its own
views are farther from its prototype.  Measured: experiments/spotting.md, "Keywords enrolled in
context" and "Keywords in context at their own level".
"""

from __future__ import annotations

import numpy as np

from kws_proto.audio.neighbours import between
from kws_proto.errors import ConfigError

CONTEXT_VIEWS = 3  # views in context a support clip gets (measured: 3 and 9)
NEIGHBOURS = 300  # neighbour clips an enrolment draws from
SEED_SALT = 17  # the views' draw: default_rng([seed, SEED_SALT])
NEIGHBOUR_SALT = 10**6 + 1  # the neighbour files' draw: default_rng([seed, NEIGHBOUR_SALT])


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
    views = np.stack([[between(c, *neighbours[rng.choice(len(neighbours), 2, replace=False)], rng)
                       for _ in range(k)] for c in np.asarray(clips, np.float32)])
    return spotter._embed_views(views)
