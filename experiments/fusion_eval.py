"""The fusion table of experiments/encoders.md: the trained member (protores_synth), gse and a fused model on identical episodes.

    python experiments/fusion_eval.py runs/fused-so762 --so762 data/so762-split/test \
        --episodes 1000 --out runs/fusion-eval.json

Every model goes through `kws_proto.eval.evaluate.evaluate_run` (what `kws-proto eval` runs) with
the same seed, data and classes, so the episodes are identical and the differences are paired.
Also times each model's spotter embedding (ms per 1 s clip, batches of 64, LiteRT when installed).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from kws_proto.eval.evaluate import evaluate_run, grid
from kws_proto.spot.spotter import KeywordSpotter
from kws_proto.util.stats import paired_difference

SETS = {
    "FSDD, speaker-disjoint": ("fsdd", [str(d) for d in range(10)], True, [(5, 1), (5, 5), (10, 5)]),
    "Picovoice": ("picovoice", ["alexa", "computer", "jarvis", "smart mirror", "snowboy", "view glass"],
                  False, [(5, 1), (5, 5)]),
}


def ms_per_clip(model: str, n: int = 64, repeats: int = 3) -> float:
    spotter = KeywordSpotter.from_model(model)
    audio = np.random.default_rng(0).normal(0, 0.1, (n, spotter.features.num_samples)).astype(np.float32)
    spotter.embed(audio)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        spotter.embed(audio)
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times)) / n


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("fused")
    p.add_argument("--shared", type=Path, default=Path("../shared/data"))
    p.add_argument("--so762", type=Path, default=None, help="speechocean762 test folder")
    p.add_argument("--episodes", type=int, default=1000)
    p.add_argument("--out", type=Path, default=Path("runs/fusion-eval.json"))
    a = p.parse_args()
    sets = {name: (a.shared / sub, cls, sd, cells) for name, (sub, cls, sd, cells) in SETS.items()}
    if a.so762:
        sets["speechocean762 words, test speakers"] = (a.so762, None, True, [(5, 1), (5, 5)])
    models = ["protores_synth", "gse", a.fused]
    out = {"ms_per_clip": {m: ms_per_clip(m) for m in models}, "rows": []}
    for name, (data, classes, sd, cells) in sets.items():
        for way, shot in cells:
            row = {"set": name, "way": way, "shot": shot}
            for m in models:
                t0 = time.perf_counter()
                r = evaluate_run(m, grid([way], [shot], 15, a.episodes), data_dir=data, classes=classes,
                                 seed=0, speaker_disjoint=sd, progress=False)[0]
                row[m] = {"mean": r["mean"], "ci95": r["ci95"], "accuracies": r["accuracies"],
                          "seconds": time.perf_counter() - t0}
            for m in ("protores_synth", "gse"):
                d = paired_difference(row[a.fused]["accuracies"], row[m]["accuracies"])
                row[f"fused-{m}"] = {"mean": d.mean, "ci95": d.ci95}
            out["rows"].append(row)
            print(name, f"{way}w{shot}s", *(f"{100 * row[m]['mean']:.2f}" for m in models),
                  *(f"{100 * row[f'fused-{m}']['mean']:+.2f}±{100 * row[f'fused-{m}']['ci95']:.2f}"
                    for m in ("protores_synth", "gse")), flush=True)
    a.out.write_text(json.dumps(out, indent=1))
    print("ms per clip:", out["ms_per_clip"])


if __name__ == "__main__":
    main()
