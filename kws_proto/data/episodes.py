"""N-way K-shot Q-query episodes as manifest row indices (no audio is touched here).

An :class:`EpisodeSampler` draws episode ``i`` from its own generator
``np.random.default_rng([seed, i])``, so the sampler's whole state is the episode counter: a run
resumed at step ``i`` sees exactly the episodes it would have seen, and a list of validation or
test episodes drawn once from a seed (:func:`fixed_episodes`) scores every encoder on identical
episodes: the seed, not a file, is what is recorded.  Loading the clips of an episode is the job of
:mod:`kws_proto.data.pipeline`.

Row layout of an :class:`Episode` with ``n_way`` keyword classes (Parnami & Lee 2020, "Few-shot
keyword spotting with prototypical networks", arXiv 2007.14463, for the optional extras)::

    rows 0 .. n_way-1    the keyword classes, in random order
    row  n_way           "_unknown_": clips of several held-out words  (when unknown_classes)
    last row             "_silence_": SILENCE sentinels, background noise made by the pipeline
                                                                            (when silence=True)

The label of a clip is its row: ``support[c]`` and ``query[c]`` both belong to ``classes[c]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from kws_proto.data.dataset import Manifest
from kws_proto.errors import ConfigError, DatasetError

SILENCE = -1
"""Row index standing for a silence clip (background noise only); the pipeline fills it."""
UNKNOWN_CLASS = "_unknown_"
SILENCE_CLASS = "_silence_"


@dataclass(frozen=True, eq=False)
class Episode:
    """One episode: manifest row indices of the support and query clips of every class.

    Attributes
    ----------
    index : int
        Episode number within its sampler (the second half of its RNG seed).
    classes : tuple of str
        Class name of every row; extras are :data:`UNKNOWN_CLASS` and :data:`SILENCE_CLASS`.
    support : np.ndarray [shape=(n_classes, k_shot), dtype=int64]
    query : np.ndarray [shape=(n_classes, n_query), dtype=int64]
        Manifest row indices, or :data:`SILENCE` in the silence row.  Read-only.
    """

    index: int
    classes: tuple[str, ...]
    support: np.ndarray
    query: np.ndarray

    def __post_init__(self) -> None:
        for name in ("support", "query"):
            a = np.array(getattr(self, name), dtype=np.int64)  # a private, read-only copy
            if a.ndim != 2 or a.shape[0] != len(self.classes):
                raise DatasetError(
                    f"episode {self.index}: {name} shape {a.shape} does not match "
                    f"{len(self.classes)} classes"
                )
            a.setflags(write=False)
            object.__setattr__(self, name, a)

    @property
    def n_way(self) -> int:
        """Number of classes, extras included."""
        return len(self.classes)

    @property
    def k_shot(self) -> int:
        return int(self.support.shape[1])

    @property
    def n_query(self) -> int:
        return int(self.query.shape[1])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Episode):
            return NotImplemented
        return (self.index, self.classes) == (other.index, other.classes) and np.array_equal(
            self.support, other.support) and np.array_equal(self.query, other.query)

    __hash__ = None  # equality compares arrays; episodes are not dict keys


class EpisodeSampler:
    """Seeded N-way K-shot Q-query episodes over some keyword classes of a manifest.

    Parameters
    ----------
    manifest : Manifest
        The prepared dataset; episodes hold its row indices.
    classes : sequence of str
        The keywords of one split; ``n_way`` of them are drawn per episode.
    n_way, k_shot, n_query : int > 0
        Keyword classes per episode, support clips and query clips per class.
    seed : int >= 0
        Episode ``i`` is drawn from ``np.random.default_rng([seed, i])``.
    speaker_disjoint : bool
        No speaker has clips in both the support and the query of a class.  Needs every clip's
        speaker; a class whose speakers cannot be split that way is a :class:`DatasetError`.
    unknown_classes : sequence of str
        Held-out words pooled into one extra class :data:`UNKNOWN_CLASS` (empty: no such class).
    silence : bool
        Add the class :data:`SILENCE_CLASS`, whose rows are :data:`SILENCE` sentinels.

    Raises
    ------
    ConfigError
        Non-positive sizes, a negative seed, repeated classes, ``n_way`` above the class count.
    DatasetError
        A class absent from the manifest or with fewer than ``k_shot + n_query`` clips (every such
        class is named with its count), unknown speakers or an impossible speaker split.
    """

    def __init__(
        self,
        manifest: Manifest,
        classes: Sequence[str],
        n_way: int,
        k_shot: int,
        n_query: int,
        seed: int = 0,
        speaker_disjoint: bool = False,
        unknown_classes: Sequence[str] = (),
        silence: bool = False,
    ) -> None:
        for name, v, least in (("n_way", n_way, 1), ("k_shot", k_shot, 1),
                               ("n_query", n_query, 1), ("seed", seed, 0)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < least:
                raise ConfigError(f"{name}={v!r} must be an integer >= {least}")
        self.classes = _unique(classes, "classes")
        self.unknown_classes = _unique(unknown_classes, "unknown_classes")
        if not self.classes:
            raise DatasetError("no classes to sample episodes from (the split is empty)")
        by_kw = manifest.indices_by_keyword()
        missing = [c for c in self.classes + self.unknown_classes if c not in by_kw]
        if missing:
            known = sorted(by_kw)
            shown = ", ".join(known[:30]) + (f", ... ({len(known)} in all)" if len(known) > 30 else "")
            raise DatasetError(f"{manifest.root}: {', '.join(map(repr, missing))} "
                               f"{'is' if len(missing) == 1 else 'are'} not in the dataset "
                               f"(its keywords: {shown})")
        if n_way > len(self.classes):
            raise ConfigError(
                f"n_way={n_way} exceeds the {len(self.classes)} classes available: {self.classes}"
            )
        both = sorted(set(self.classes) & set(self.unknown_classes))
        if both:
            raise ConfigError(f"unknown_classes {both} are also episode classes")
        self.manifest = manifest
        self.n_way, self.k_shot, self.n_query, self.seed = map(int, (n_way, k_shot, n_query, seed))
        self.speaker_disjoint, self.silence = bool(speaker_disjoint), bool(silence)

        self._pools = {c: by_kw[c] for c in self.classes}  # class -> its manifest rows
        if self.unknown_classes:
            pooled = np.concatenate([by_kw[c] for c in self.unknown_classes])
            self._pools[UNKNOWN_CLASS] = np.sort(pooled)
        need = self.k_shot + self.n_query
        small = [f"{c!r} ({len(rows)} clips)" for c, rows in self._pools.items()
                 if len(rows) < need]
        if small:
            pooled = f" ({UNKNOWN_CLASS!r} pools {list(self.unknown_classes)})"
            raise DatasetError(
                f"{manifest.root}: {self.k_shot}-shot {self.n_query}-query episodes need "
                f"{need} clips per class; too few in: {', '.join(small)}"
                + (pooled if any(UNKNOWN_CLASS in c for c in small) else "")
            )
        self._speakers = None  # speaker code of every manifest row, when speaker_disjoint
        if self.speaker_disjoint:
            names = manifest.speakers().astype(str)
            for name, rows in self._pools.items():
                _check_speaker_split(name, names[rows], self.k_shot, self.n_query)
            self._speakers = np.unique(names, return_inverse=True)[1].astype(np.int64)

    @property
    def episode_classes(self) -> int:
        """Classes per episode, extras included."""
        return self.n_way + bool(self.unknown_classes) + self.silence

    def sample(self, index: int) -> Episode:
        """Episode number ``index`` (the same for the same seed, on every call)."""
        if index < 0:
            raise ConfigError(f"episode index={index} must be >= 0")
        rng = np.random.default_rng([self.seed, int(index)])
        names = [self.classes[i] for i in rng.choice(len(self.classes), self.n_way, replace=False)]
        if self.unknown_classes:
            names.append(UNKNOWN_CLASS)
        support, query = zip(*(self._split(rng, self._pools[c]) for c in names))
        if self.silence:
            names.append(SILENCE_CLASS)
            support += (np.full(self.k_shot, SILENCE),)
            query += (np.full(self.n_query, SILENCE),)
        return Episode(int(index), tuple(names), np.stack(support), np.stack(query))

    def _split(self, rng: np.random.Generator, rows: np.ndarray):
        """``k_shot`` support and ``n_query`` query rows of one class, disjoint."""
        k, q = self.k_shot, self.n_query
        if not self.speaker_disjoint:
            chosen = rng.choice(rows, size=k + q, replace=False)
            return chosen[:k], chosen[k:]
        spk = self._speakers[rows]
        support = rng.choice(rows, size=k, replace=False)  # fast path: uniform support clips
        rest = rows[~np.isin(spk, self._speakers[support])]
        if len(rest) < q:  # e.g. one speaker owns most clips: choose the speaker split exactly
            in_support = _random_speaker_split(rng, spk, k, q)
            support = rng.choice(rows[in_support], size=k, replace=False)
            rest = rows[~in_support]
        return support, rng.choice(rest, size=q, replace=False)

    def episodes(self, start: int = 0, stop: int | None = None) -> Iterator[Episode]:
        """Episodes ``start, start+1, ...`` up to ``stop`` (exclusive; ``None``: forever)."""
        i = start
        while stop is None or i < stop:
            yield self.sample(i)
            i += 1

    def __iter__(self) -> Iterator[Episode]:
        return self.episodes()


def _unique(names: Sequence[str], what: str) -> tuple[str, ...]:
    if isinstance(names, str):
        raise ConfigError(f"{what}={names!r} must be a sequence of class names, not one string")
    names = tuple(names)
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"{what} repeats {dup}")
    return names


def _any_bit(bits: int, lo: int, hi: int) -> bool:
    """Whether the bitset ``bits`` holds any value in ``[lo, hi]``."""
    lo = max(lo, 0)
    return hi >= lo and (bits >> lo) & ((1 << (hi - lo + 1)) - 1) != 0


def _check_speaker_split(name: str, spk: np.ndarray, k: int, q: int) -> None:
    """Raise unless the clips of speakers ``spk [n_clips]`` split into >= k and >= q clips."""
    if (spk == "").any():
        raise DatasetError(
            f"class {name!r}: {int(np.sum(spk == ''))} of {len(spk)} clips have no speaker; "
            f"speaker-disjoint episodes need every speaker (use speaker_disjoint=False)"
        )
    counts = np.unique(spk, return_counts=True)[1]
    reach = 1  # bitset of the clip totals of all sets of speakers (subset sums)
    for c in counts:
        reach |= reach << int(c)
    if not _any_bit(reach, k, len(spk) - q):
        raise DatasetError(
            f"class {name!r}: its {len(spk)} clips by {len(counts)} speaker(s) (clips per "
            f"speaker {sorted(counts.tolist(), reverse=True)}) cannot give {k} support and {q} "
            f"query clips from disjoint speakers"
        )


def _random_speaker_split(rng: np.random.Generator, spk: np.ndarray, k: int, q: int) -> np.ndarray:
    """Mask of the clips (speaker codes ``spk``) of a random set of speakers holding >= k
    clips and leaving >= q.

    Speakers are visited in random order and each is put in the support or left out at random,
    among the choices after which the subset sums of the remaining speakers can still finish in
    ``[k, total - q]`` (such a set exists: checked at construction).
    """
    names, counts = np.unique(spk, return_counts=True)
    order = rng.permutation(len(names))
    counts, total = counts[order], len(spk)
    suffix = [1] * (len(counts) + 1)  # suffix[i]: subset sums of the speakers order[i:]
    for i in range(len(counts) - 1, -1, -1):
        suffix[i] = suffix[i + 1] | (suffix[i + 1] << int(counts[i]))
    taken, acc = [], 0
    for i, c in enumerate(counts):
        options = (acc + int(c), acc) if rng.random() < 0.5 else (acc, acc + int(c))
        acc_next = next(a for a in options if _any_bit(suffix[i + 1], k - a, total - q - a))
        if acc_next != acc:
            taken.append(names[order[i]])
        acc = acc_next
    return np.isin(spk, taken)


def fixed_episodes(sampler: EpisodeSampler, n: int, start: int = 0) -> list[Episode]:
    """Episodes ``start .. start+n-1`` of ``sampler``, drawn once to be reused (validation,
    test): the same sampler and seed give the same episodes for every model."""
    if n < 1:
        raise ConfigError(f"n={n} episodes must be positive")
    return list(sampler.episodes(start, start + n))

