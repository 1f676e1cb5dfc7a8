"""Split speechocean762 words/ by speaker for the fusion measurements (experiments/encoders.md).

Speakers are shuffled by --seed and halved: the first half's clips are the centre corpus of
`kws-proto fuse` (OUT/centre/<word>/<speaker>_<n>.flac), the second half's the test folder
(OUT/test/<word>/<word>_<speaker>_<n>.flac, names that carry the speaker, so --speaker-disjoint
works), keeping only words with at least --min-clips clips of at least two test speakers.
The centre half's words with at least --train-min-clips clips are also linked as a training
corpus, OUT/train/<word>/<word>_<speaker>_<n>.flac (names `kws-prep folder` reads speakers from;
5-way 5-shot 5-query episodes need 10 clips a word), for `kws-prep merge` with the built-in
corpus (experiments/encoders.md, "Real speech in training").  Symbolic links only: nothing is
copied.

    python experiments/fusion_split.py ../shared/data/speechocean762/words data/so762-split
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np


def _link(folder: Path, clips, prefix: str) -> None:
    """A symbolic link ``folder/<prefix><name>`` to each clip (replacing an earlier one)."""
    folder.mkdir(parents=True, exist_ok=True)
    for c in clips:
        link = folder / f"{prefix}{c.name}"
        link.unlink(missing_ok=True)
        link.symlink_to(c)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("words", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-clips", type=int, default=20)
    p.add_argument("--train-min-clips", type=int, default=10)
    a = p.parse_args()
    clips = sorted(a.words.resolve().glob("*/*.flac"))
    speakers = sorted({c.stem.split("_")[0] for c in clips})
    order = np.random.default_rng(a.seed).permutation(len(speakers))
    centre = {speakers[i] for i in order[: len(speakers) // 2]}
    halves = {"centre": defaultdict(list), "test": defaultdict(list)}
    for c in clips:
        half = "centre" if c.stem.split("_")[0] in centre else "test"
        halves[half][c.parent.name].append(c)
    for word, cs in halves["centre"].items():
        _link(a.out / "centre" / word, cs, "")
    trained = kept = 0
    for word, cs in sorted(halves["centre"].items()):
        if len(cs) >= a.train_min_clips:
            trained += 1
            _link(a.out / "train" / word, cs, f"{word}_")
    for word, cs in sorted(halves["test"].items()):
        if len(cs) >= a.min_clips and len({c.stem.split("_")[0] for c in cs}) >= 2:
            kept += 1
            _link(a.out / "test" / word, cs, f"{word}_")
    print(f"{len(centre)} centre speakers, {len(speakers) - len(centre)} test speakers; "
          f"{kept} test words with >= {a.min_clips} clips; {trained} centre-half words with >= "
          f"{a.train_min_clips} clips in train/")


if __name__ == "__main__":
    main()
