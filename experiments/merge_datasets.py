"""Join prepared datasets into one for training: the first one's splits, every class of the others
added to its training words.

    python experiments/merge_datasets.py OUT BASE EXTRA [EXTRA ...]

``OUT/manifest.csv`` lists every clip of ``BASE`` and the ``EXTRA`` folders by a path relative to
``OUT`` (no audio is copied); ``OUT/splits.json`` is ``BASE``'s with the extras' classes appended
to ``train``; ``BASE``'s background noise is linked. Used by ``levers/demo_plus_*.yaml``
(experiments/README.md: real speech of ``../shared/data`` among the training words), e.g.

    kws-prep folder ../shared/data/picovoice data/picovoice
    python experiments/merge_datasets.py data/demo+picovoice data/synth-demo data/picovoice
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from kws_proto.dataset import (NOISE_DIR, Clip, Splits, load_manifest, load_splits,
                               write_manifest, write_splits)


def merge(out: Path, base: Path, extras: list[Path]) -> tuple[int, int]:
    """Write the joined dataset into ``out``; returns (clips, training classes)."""
    out.mkdir(parents=True, exist_ok=True)
    clips, splits = [], load_splits(base)
    extra_classes: list[str] = []
    for src in [base, *extras]:
        rel = os.path.relpath(src.resolve(), out.resolve())
        clips += [Clip(f"{rel}/{c.path}", c.keyword, c.speaker, c.duration, c.sample_rate)
                  for c in load_manifest(src).clips]
        if src != base:
            e = load_splits(src)
            extra_classes += [k for k in (*e.train, *e.validation, *e.test) if k not in extra_classes]
    taken = set(splits.train) | set(splits.validation) | set(splits.test)
    clash = sorted(taken & set(extra_classes))
    if clash:
        raise SystemExit(f"{base} already has the extra classes {clash}")
    merged = Splits.from_dict({**splits.to_dict(), "train": [*splits.train, *extra_classes],
                               "protocol": f"{splits.protocol} + train on {', '.join(map(str, extras))}"})
    noise = base / NOISE_DIR
    if noise.is_dir() and not (out / NOISE_DIR).exists():
        os.symlink(os.path.relpath(noise.resolve(), out.resolve()), out / NOISE_DIR)
    write_manifest(out, clips)
    write_splits(out, merged)
    return len(clips), len(merged.train)


if __name__ == "__main__":
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    n, k = merge(Path(sys.argv[1]), Path(sys.argv[2]), [Path(p) for p in sys.argv[3:]])
    print(f"{sys.argv[1]}: {n} clips, {k} training classes")
