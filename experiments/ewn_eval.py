"""EfficientWord-Net's embedding beside `protores_synth` and `gse` (and fusions) on identical episodes.

    python experiments/ewn_eval.py --shared ../shared/data --episodes 1000 \
        --fused runs/fused-so762 runs/fused3-so762 --out runs/ewn-eval.json
    python experiments/ewn_eval.py --models ewn ewn-1.5s --out runs/ewn15-eval.json

The table of experiments/encoders.md's EfficientWord-Net section: every model through
`kws_proto.eval.evaluate.evaluate_run` (what `kws-proto eval` runs) with the same seed, data and
classes as experiments/fusion_eval.py (its SETS), so the episodes are identical and differences are
paired; `ewn - gse`, `ewn - protores_synth` and, with two fused models, the second minus the first.
Also each model's spotter embedding time (ms per 1 s clip, batches of 64).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from fusion_eval import SETS, ms_per_clip  # experiments/ is the script's folder

from kws_proto.eval.evaluate import evaluate_run, grid
from kws_proto.eval.frozen import is_frozen
from kws_proto.spot.frozen import is_frozen as is_spotter_model
from kws_proto.util.stats import paired_difference


def pairs(models: list[str], fused: list[str]) -> list[tuple[str, str]]:
    out = [("ewn", "gse"), ("ewn", "protores_synth")]
    if len(fused) == 2:
        out.append((fused[1], fused[0]))
    return [p for p in out if set(p) <= set(models)]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--shared", type=Path, default=Path("../shared/data"))
    p.add_argument("--episodes", type=int, default=1000)
    p.add_argument("--models", nargs="+", default=["default", "gse", "ewn"])
    p.add_argument("--fused", nargs="*", default=[], help="fused model folders to add")
    p.add_argument("--out", type=Path, default=Path("runs/ewn-eval.json"))
    a = p.parse_args()
    models = list(a.models) + list(a.fused)
    timed = [m for m in models if not is_frozen(m) or is_spotter_model(m)]  # not `ewn-1.5s`: eval only
    out = {"episodes": a.episodes, "ms_per_clip": {m: ms_per_clip(m, n=16) for m in timed}, "rows": []}
    print("ms per clip:", out["ms_per_clip"], flush=True)
    for name, (sub, classes, sd, cells) in SETS.items():
        for way, shot in cells:
            row = {"set": name, "way": way, "shot": shot}
            for m in models:
                t0 = time.perf_counter()
                r = evaluate_run(m, grid([way], [shot], 15, a.episodes), data_dir=a.shared / sub,
                                 classes=classes, seed=0, speaker_disjoint=sd, progress=False)[0]
                row[m] = {"mean": r["mean"], "ci95": r["ci95"], "accuracies": r["accuracies"],
                          "seconds": time.perf_counter() - t0}
            for x, y in pairs(models, a.fused):
                d = paired_difference(row[x]["accuracies"], row[y]["accuracies"])
                row[f"{x} - {y}"] = {"mean": d.mean, "ci95": d.ci95}
            out["rows"].append(row)
            print(name, f"{way}w{shot}s",
                  *(f"{m}={100 * row[m]['mean']:.2f}±{100 * row[m]['ci95']:.2f}" for m in models),
                  *(f"[{x} - {y}]={100 * row[f'{x} - {y}']['mean']:+.2f}±"
                    f"{100 * row[f'{x} - {y}']['ci95']:.2f}" for x, y in pairs(models, a.fused)),
                  flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
