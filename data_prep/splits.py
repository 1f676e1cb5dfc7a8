"""Few-shot class splits: every keyword goes to exactly one of train / validation / test (/ unknown).

- :func:`random_split`: seeded, with given sizes.
- :func:`explicit_split`: from word lists (``--test-words yes,no,...``).
- :func:`parnami_split`: Parnami & Lee (arXiv 2007.14463) on Speech Commands: over the words with
  at least ``min_speakers`` speakers, 5 test / 5 validation / the rest training; every other word
  joins the "unknown" pool.
- :func:`core_split`: train on the non-command words, test on the ten command words
  (yes, no, up, down, left, right, on, off, stop, go); a few non-command words validate.
- :func:`all_test_split`: every keyword a test class (a corpus used only to test, e.g. FSDD).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from data_prep.words import CORE_WORDS
from kws_proto.data.dataset import Manifest, Splits
from kws_proto.errors import ConfigError, DatasetError

PROTOCOLS = ("random", "explicit", "parnami", "core", "test-only")


def _pick(words: Sequence[str], n: int, rng: np.random.Generator) -> list[str]:
    """``n`` of ``words`` in a seeded order (``words`` sorted first so the order is canonical)."""
    pool = sorted(words)
    return [pool[i] for i in rng.permutation(len(pool))[:n]]


def _check_sizes(n_keywords: int, **sizes: int | None) -> None:
    for name, v in sizes.items():
        if v is not None and v < 0:
            raise ConfigError(f"{name}={v} must be >= 0")
    need = sum(v for v in sizes.values() if v)
    if need > n_keywords:
        raise DatasetError(f"the split asks for {need} classes ({sizes}) but there are {n_keywords} keywords")


def random_split(
    keywords: Sequence[str], n_validation: int, n_test: int, n_train: int | None = None, seed: int = 0
) -> Splits:
    """Seeded random split of ``keywords``.

    Parameters
    ----------
    keywords : sequence of str
        Every keyword of the dataset.
    n_validation, n_test : int >= 0
        Class counts of the validation and test splits.
    n_train : int, optional
        Training classes; default all the rest.  Keywords left over go to "unknown".
    seed : int
        Fixes the assignment.
    """
    keywords = sorted(set(keywords))
    _check_sizes(len(keywords), validation=n_validation, test=n_test, train=n_train)
    order = _pick(keywords, len(keywords), np.random.default_rng(seed))
    test, order = order[:n_test], order[n_test:]
    val, order = order[:n_validation], order[n_validation:]
    n_train = len(order) if n_train is None else n_train
    return Splits(train=tuple(sorted(order[:n_train])), validation=tuple(sorted(val)),
                  test=tuple(sorted(test)), unknown=tuple(sorted(order[n_train:])),
                  protocol="random", seed=seed)


def _require(words: Sequence[str], keywords: set[str], what: str) -> None:
    missing = [w for w in words if w not in keywords]
    if missing:
        raise DatasetError(f"{what} word(s) {missing} are not keywords of the dataset")


def explicit_split(
    keywords: Sequence[str],
    test: Sequence[str],
    validation: Sequence[str] | None = None,
    train: Sequence[str] | None = None,
    n_validation: int = 0,
    seed: int = 0,
) -> Splits:
    """Split from lists.

    ``validation`` defaults to ``n_validation`` seeded picks among the words not in ``test``;
    ``train`` defaults to every remaining word; when ``train`` is given, the rest is "unknown".
    """
    kw = set(keywords)
    for name, words in (("test", test), ("validation", validation or ()), ("train", train or ())):
        _require(words, kw, name)
    rng = np.random.default_rng(seed)
    rest = kw - set(test)
    if validation is None:
        pool = rest - set(train or ())
        _check_sizes(len(pool), validation=n_validation)
        validation = _pick(pool, n_validation, rng)
    rest -= set(validation)
    train_set = rest if train is None else set(train)
    return Splits(train=tuple(sorted(train_set)), validation=tuple(sorted(validation)),
                  test=tuple(sorted(test)), unknown=tuple(sorted(rest - train_set)),
                  protocol="explicit", seed=seed)


def speakers_per_keyword(manifest: Manifest) -> dict[str, int]:
    """Distinct known speakers of every keyword."""
    out: dict[str, set[str]] = {}
    for c in manifest.clips:
        out.setdefault(c.keyword, set())
        if c.speaker:
            out[c.keyword].add(c.speaker)
    return {k: len(v) for k, v in out.items()}


def parnami_split(
    manifest: Manifest, seed: int = 0, min_speakers: int = 1000, n_test: int = 5, n_validation: int = 5
) -> Splits:
    """Parnami & Lee's split: 5 test / 5 validation / rest training over well-represented words.

    Words with fewer than ``min_speakers`` distinct speakers form the "unknown" pool.
    """
    counts = speakers_per_keyword(manifest)
    good = [k for k, n in counts.items() if n >= min_speakers]
    if len(good) < n_test + n_validation + 1:
        raise DatasetError(
            f"parnami protocol: only {len(good)} keyword(s) have >= {min_speakers} speakers "
            f"({n_test} test + {n_validation} validation + >= 1 training needed); lower --min-speakers"
        )
    s = random_split(good, n_validation, n_test, seed=seed)
    unknown = sorted(k for k in counts if k not in set(good))
    return Splits(train=s.train, validation=s.validation, test=s.test, unknown=tuple(unknown),
                  protocol="parnami", seed=seed,
                  extra={"min_speakers": min_speakers, "one_clip_per_speaker": True})


def core_split(keywords: Sequence[str], seed: int = 0, n_validation: int = 5) -> Splits:
    """Test on the ten command words, train on the others (``n_validation`` of them validate)."""
    kw = set(keywords)
    _require(CORE_WORDS, kw, "core command")
    rest = sorted(kw - set(CORE_WORDS))
    if len(rest) < n_validation + 1:
        raise DatasetError(f"core protocol: {len(rest)} non-command word(s), need >= {n_validation + 1}")
    s = explicit_split(keywords, test=CORE_WORDS, n_validation=n_validation, seed=seed)
    return Splits(train=s.train, validation=s.validation, test=s.test, protocol="core", seed=seed)


def all_test_split(keywords: Sequence[str]) -> Splits:
    """Every keyword is a test class: for corpora used only to evaluate (cross-corpus tests)."""
    return Splits(train=(), validation=(), test=tuple(sorted(set(keywords))), protocol="test-only")
