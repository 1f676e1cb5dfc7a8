"""The Google Speech Commands folder layout: file names, speakers and the hash-based split lists.

A clip is ``WORD/SPEAKER_nohash_N.wav``; in ``_unknown_``-style folders (leading underscore) it is
``WORD_SPEAKER_nohash_N.wav``, and some releases double the extension (``.wav.wav``).  Which of
``validation_list.txt`` / ``testing_list.txt`` a clip goes to is decided by a hash of the part of
its name before ``_nohash_``, so one speaker's clips stay together (the rule of TensorFlow's
speech-commands recipe, Warden 2018, section "which_set").
"""

from __future__ import annotations

import hashlib
import os
from kws_proto.util.atomic import atomic_write_text
from pathlib import Path



NOHASH = "_nohash_"
VALIDATION_LIST = "validation_list.txt"
TESTING_LIST = "testing_list.txt"
_HASH_BUCKETS = 2**27 - 1  # the recipe's MAX_NUM_WAVS_PER_CLASS


def clip_stem(filename: str) -> str:
    """``filename`` without its (possibly doubled) ``.wav`` extension."""
    stem = filename
    while stem.lower().endswith(".wav"):
        stem = stem[:-4]
    return stem


def parse_clip_name(folder: str, filename: str) -> tuple[str, str]:
    """Keyword and speaker of a Speech Commands clip.

    Parameters
    ----------
    folder : str
        The clip's folder: a keyword, or an ``_unknown_``-style folder (leading ``_``) whose
        files carry their word in the name.
    filename : str
        ``SPEAKER_nohash_N.wav`` or ``WORD_SPEAKER_nohash_N.wav`` (``.wav.wav`` accepted).

    Returns
    -------
    keyword, speaker : str, str
        ``speaker`` is ``""`` when the name has no ``_nohash_`` part.

    Examples
    --------
    >>> parse_clip_name("yes", "0a7c2a8d_nohash_1.wav")
    ('yes', '0a7c2a8d')
    >>> parse_clip_name("_unknown_", "bed_0c40e715_nohash_0.wav.wav")
    ('bed', '0c40e715')
    """
    stem = clip_stem(filename)
    prefix = stem.split(NOHASH, 1)[0] if NOHASH in stem else ""
    if folder.startswith("_") and NOHASH in stem and "_" in prefix:
        word, speaker = prefix.rsplit("_", 1)
        return word, speaker
    return folder, prefix


def which_set(filename: str, validation_percentage: float = 10.0, testing_percentage: float = 10.0) -> str:
    """``"validation"``, ``"testing"`` or ``"training"`` for a clip, stable per speaker.

    The SHA-1 of the name before ``_nohash_`` is mapped to a percentage; the lowest
    ``validation_percentage`` go to validation, the next ``testing_percentage`` to testing.
    """
    stem = clip_stem(Path(filename).name)
    key = stem.split(NOHASH, 1)[0]
    digest = int(hashlib.sha1(key.encode("utf-8")).hexdigest(), 16)
    percent = (digest % (_HASH_BUCKETS + 1)) * (100.0 / _HASH_BUCKETS)
    if percent < validation_percentage:
        return "validation"
    if percent < validation_percentage + testing_percentage:
        return "testing"
    return "training"


def write_split_lists(
    root: str | os.PathLike,
    rel_paths: list[str],
    validation_percentage: float = 10.0,
    testing_percentage: float = 10.0,
) -> dict[str, int]:
    """Write ``validation_list.txt`` and ``testing_list.txt`` (sorted ``WORD/FILE`` lines).

    Returns
    -------
    counts : dict
        ``{"training": n, "validation": n, "testing": n}``.
    """
    lists: dict[str, list[str]] = {"training": [], "validation": [], "testing": []}
    for rel in rel_paths:
        lists[which_set(rel, validation_percentage, testing_percentage)].append(rel)
    root = Path(root)
    for name, key in ((VALIDATION_LIST, "validation"), (TESTING_LIST, "testing")):
        lines = sorted(lists[key])
        atomic_write_text(root / name, "".join(f"{ln}\n" for ln in lines))
    return {k: len(v) for k, v in lists.items()}


def read_split_list(root: str | os.PathLike, name: str) -> list[str]:
    """Lines of ``root/name`` (empty when the file is absent)."""
    p = Path(root) / name
    if not p.is_file():
        return []
    return [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()]
