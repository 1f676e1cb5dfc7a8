"""Text enrolment against recorded support: 5-way classification of held-out real clips.

Each episode (``numpy.random.default_rng([seed, episode])``) draws 5 of the corpus's keywords;
per keyword the recorded support is 5 clips (FSDD: all of one drawn speaker, the queries from
the other speakers; Picovoice: other files) and the queries 10 other clips.  Prototypes, each
the mean of its support clips' embeddings (a clip: the mean of its enrolment views, as
``KeywordSpotter.enroll`` and ``enroll_text`` make them):

- ``real 5`` / ``real 1``: the first 5 / 1 recorded support clips;
- ``text 50``: the keyword's text said by 50 built-in eSpeak NG voices
  (``KeywordSpotter.enroll_text``'s clips, :func:`kws_proto.spot.synthetic.say`);
- ``real 1 + text 50``, ``real 5 + text 50``: both, every clip weighing the same (the prototype
  ``enroll_text`` makes with ``recorded_weight=None``);
- ``real 1 | text 50``: the mean of the recorded clip's embedding and the synthesised clips'
  mean (each half the weight: ``enroll_text``'s default, :func:`kws_proto.spot.text.prototype_weights`).

A query is the nearest prototype (closed set, thresholds play no part).  Prints a Markdown table
of accuracy (mean over episodes and its 95% CI) and the paired differences.

    python experiments/text_enrol.py --fsdd data/fsdd --picovoice data/picovoice --episodes 300
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

WAY, SHOTS, QUERIES, VOICES = 5, 5, 10, 50
CONDITIONS = ("real 5", "text 50", "real 1", "real 1 + text 50", "real 1 | text 50",
              "real 5 + text 50")


def draw(pool, rng, by_speaker: bool):
    """One episode: ``{keyword: (support paths [SHOTS], query paths [QUERIES])}``."""
    keywords = sorted(pool.keywords)
    chosen = [keywords[i] for i in sorted(rng.choice(len(keywords), WAY, replace=False))]
    speaker = None
    if by_speaker:
        speakers = sorted({pool.speaker_of[p] for k in chosen for p in pool.paths[k]})
        speaker = speakers[int(rng.integers(len(speakers)))]
    out = {}
    for k in chosen:
        paths = pool.paths[k]
        own = [p for p in paths if not by_speaker or pool.speaker_of[p] == speaker]
        support = pool.take(rng, own, SHOTS, f"{k} support")
        rest = [p for p in paths if p not in support
                and (not by_speaker or pool.speaker_of[p] != speaker)]
        out[k] = (support, pool.take(rng, rest, QUERIES, f"{k} queries"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fsdd", type=Path, default=Path("data/fsdd"))
    ap.add_argument("--picovoice", type=Path, default=Path("data/picovoice"))
    ap.add_argument("--episodes", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default="default")
    args = ap.parse_args()

    from kws_proto.eval.streams import ClipPool
    from kws_proto.spot.decision import clip_embeddings
    from kws_proto.spot.spotter import KeywordSpotter
    from kws_proto.spot.synthetic import keyword_text, say, voice_settings
    from kws_proto.util.stats import mean_ci, paired_difference

    sp = KeywordSpotter.from_model(args.model)
    sr, clip_s = sp.features.sample_rate, sp.features.clip_seconds
    print(f"| corpus | {' | '.join(CONDITIONS)} |\n|---|" + "---|" * len(CONDITIONS))
    for name, root, by_speaker in (("FSDD, speaker-disjoint", args.fsdd, True),
                                   ("Picovoice", args.picovoice, False)):
        pool = ClipPool(root)
        synth = {}
        for k in pool.keywords:
            clips = [y for _, y in say(keyword_text(k), voice_settings(VOICES, 0), sr, clip_s)]
            synth[k] = clip_embeddings(sp.embed_views(clips)).astype(np.float64)  # [50, d]
        cache: dict[str, np.ndarray] = {}

        def support(paths):
            new = [p for p in paths if p not in cache]
            if new:
                for p, e in zip(new, clip_embeddings(sp.embed_views([root / p for p in new]))):
                    cache[p] = e.astype(np.float64)
            return np.stack([cache[p] for p in paths])

        acc = {c: [] for c in CONDITIONS}
        for ep in range(args.episodes):
            rng = np.random.default_rng([args.seed, ep])
            episode = draw(pool, rng, by_speaker)
            keys = list(episode)
            queries = np.asarray(sp.embed_files([root / p for k in keys for p in episode[k][1]]),
                                 np.float64)
            truth = np.repeat(np.arange(len(keys)), QUERIES)
            real = {k: support(episode[k][0]) for k in keys}
            protos = {
                "real 5": [real[k].mean(0) for k in keys],
                "text 50": [synth[k].mean(0) for k in keys],
                "real 1": [real[k][0] for k in keys],
                "real 1 + text 50": [np.vstack([real[k][:1], synth[k]]).mean(0) for k in keys],
                "real 1 | text 50": [(real[k][0] + synth[k].mean(0)) / 2 for k in keys],
                "real 5 + text 50": [np.vstack([real[k], synth[k]]).mean(0) for k in keys],
            }
            for c, p in protos.items():
                d = ((queries[:, None, :] - np.stack(p)[None]) ** 2).sum(-1)
                acc[c].append(float(np.mean(d.argmin(1) == truth)))
        cells = []
        for c in CONDITIONS:
            cells.append(f"{mean_ci(acc[c])}")
        print(f"| {name} | {' | '.join(cells)} |", flush=True)
        for c, ref in (("text 50", "real 5"), ("real 1 + text 50", "real 1"),
                       ("real 1 | text 50", "real 1"),
                       ("real 1 + text 50", "real 5"), ("real 5 + text 50", "real 5")):
            d = paired_difference(acc[c], acc[ref])
            print(f"|   {c} - {ref} (paired) | {100 * d.mean:+.2f} ± {100 * d.ci95:.2f} |",
                  flush=True)


if __name__ == "__main__":
    main()
