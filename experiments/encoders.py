"""The peer in every comparison: the shipped encoder against the Google speech embedding.

Scores the shipped trained encoder (``protores_synth``) and the Google speech embedding (``gse``: the project's 1 s crop; ``gse-full``:
the whole recording) with ``kws-proto eval``'s own :func:`~kws_proto.eval.evaluate.evaluate_run` on
the same fixed episodes (seed 0, 15 queries a class): FSDD digits speaker-disjoint at 5-way
1-/5-shot and 10-way 5-shot, Picovoice wake words at 5-way 1-/5-shot.  Prints a Markdown table
of mean ± 95% CI, the paired difference of each GSE variant against ``protores_synth`` on identical
episodes, and the GSE's embedding time per clip.

    python experiments/encoders.py [--fsdd data/fsdd] [--picovoice data/picovoice] \
        [--fsdd-full data/fsdd-full] [--picovoice-full data/picovoice-full] [--episodes 1000]

``gse-full`` needs the whole recordings, which the prepared folders (``kws-prep folder``'s
default ``--duration 1.0``) no longer hold: it is scored on folders of the originals made with
``kws-prep folder ../shared/data/NAME data/NAME-full --audio symlink``, whose manifests list the
same rows in the same order (so the episodes are the same; checked here).

Needs the optional extra: ``pip install -e '.[gse]'``.  Written up in experiments/encoders.md.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PICOVOICE = ("alexa", "computer", "jarvis", "smart mirror", "snowboy", "view glass")
MODELS = ("protores_synth", "gse", "gse-full")


def cells(args):
    """``(name, data_dir, full_dir, classes, speaker_disjoint, [(way, shot), ...])`` of each test set."""
    return [("FSDD", args.fsdd, args.fsdd_full, tuple(str(d) for d in range(10)), True,
             [(5, 1), (5, 5), (10, 5)]),
            ("Picovoice", args.picovoice, args.picovoice_full, PICOVOICE, False, [(5, 1), (5, 5)])]


def same_rows(a: Path, b: Path) -> None:
    """The two folders list the same clips (path without suffix, keyword, speaker) in order."""
    from kws_proto.data.dataset import load_manifest

    key = lambda c: (c.path.rsplit(".", 1)[0], c.keyword, c.speaker)  # noqa: E731
    if [key(c) for c in load_manifest(a).clips] != [key(c) for c in load_manifest(b).clips]:
        raise SystemExit(f"{a} and {b} list other clips: their episodes would differ")


def ms_per_clip(data_dir: Path, n: int = 200) -> dict:
    """Embedding time of the GSE per clip (1 s crop, and whole recordings), on ``n`` clips."""
    from kws_proto.audio.loading import load_audio, read_audio
    from kws_proto.data.dataset import load_manifest
    from kws_proto.model.gse import gse_embed_clips

    paths = load_manifest(data_dir).paths()[:: max(1, len(load_manifest(data_dir)) // n)][:n]
    crops = [load_audio(p, 16000, 1.0, "loudest") for p in paths]
    whole = [read_audio(p, 16000) for p in paths]
    gse_embed_clips(crops[0][None])  # load the interpreters first
    out = {}
    t = time.perf_counter()
    gse_embed_clips(np.stack(crops))
    out["1 s crop"] = 1000 * (time.perf_counter() - t) / len(crops)
    t = time.perf_counter()
    for y in whole:
        gse_embed_clips(y[None])
    out["whole clip"] = 1000 * (time.perf_counter() - t) / len(whole)
    out["mean seconds"] = sum(len(y) for y in whole) / 16000 / len(whole)
    return out


def crop_sweep(args, seconds=(1.0, 1.5, 2.0)) -> None:
    """``gse`` on the loudest ``c`` seconds of the whole recordings, for each ``c``: how much
    context the embedding needs (the same episodes; tables cached in the ``-full`` folders)."""
    from kws_proto.data.dataset import load_manifest
    from kws_proto.eval.evaluate import EvalSetting, eval_episodes, score_episodes
    from kws_proto.audio.features import FeatureConfig
    from kws_proto.eval.gse import open_source
    from kws_proto.model.gse import crop_table

    print("\n| test set | setting | " + " | ".join(f"gse, loudest {c:g} s" for c in seconds) + " |")
    print("|---" * (2 + len(seconds)) + "|")
    for name, _, full, classes, disjoint, settings in cells(args):
        source = open_source(full, disjoint)
        tables = [np.asarray(crop_table(load_manifest(full), FeatureConfig(clip_seconds=c), progress=False))
                  for c in seconds]
        for w, k in settings:
            episodes = eval_episodes(source, classes, EvalSetting(w, k, 15, args.episodes), args.seed)
            cols = [score_episodes(t, episodes).summary for t in tables]
            print(f"| {name} | {w}-way {k}-shot | " + " | ".join(str(c) for c in cols) + " |", flush=True)


def main(argv=None) -> int:
    from kws_proto.eval.evaluate import EvalSetting, evaluate_run
    from kws_proto.util.stats import paired_difference

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fsdd", type=Path, default=Path("data/fsdd"))
    p.add_argument("--picovoice", type=Path, default=Path("data/picovoice"))
    p.add_argument("--fsdd-full", type=Path, default=Path("data/fsdd-full"))
    p.add_argument("--picovoice-full", type=Path, default=Path("data/picovoice-full"))
    p.add_argument("--episodes", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--crop-sweep", action="store_true",
                   help="instead: gse on the loudest 1, 1.5 and 2 s of the whole recordings")
    args = p.parse_args(argv)
    if args.crop_sweep:
        crop_sweep(args)
        return 0

    print("| test set | setting | " + " | ".join(MODELS) + " | gse − protores_synth | gse-full − protores_synth |")
    print("|---" * (4 + len(MODELS)) + "|")
    for name, root, full, classes, disjoint, settings in cells(args):
        same_rows(root, full)
        grid = [EvalSetting(w, k, 15, args.episodes) for w, k in settings]
        rows = {m: evaluate_run(m, grid, data_dir=full if m == "gse-full" else root, classes=classes,
                                seed=args.seed, speaker_disjoint=disjoint, progress=False)
                for m in MODELS}
        for i, (w, k) in enumerate(settings):
            acc = {m: rows[m][i] for m in MODELS}
            diffs = [paired_difference(acc[m]["accuracies"], acc["protores_synth"]["accuracies"])
                     for m in ("gse", "gse-full")]
            print(f"| {name} | {w}-way {k}-shot | "
                  + " | ".join(f"{100 * acc[m]['mean']:.2f} ± {100 * acc[m]['ci95']:.2f}" for m in MODELS)
                  + " | " + " | ".join(f"{100 * d.mean:+.2f} ± {100 * d.ci95:.2f}" for d in diffs) + " |",
                  flush=True)
    for name, _, full, *_ in cells(args):
        t = ms_per_clip(full)
        print(f"{name}: GSE {t['1 s crop']:.1f} ms per 1 s crop, {t['whole clip']:.1f} ms per whole "
              f"clip (mean {t['mean seconds']:.2f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
