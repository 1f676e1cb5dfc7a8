"""The encoder table of experiments/encoders.md: every model on the same four test sets, one row a command.

    python experiments/encoders_table.py MODEL [MODEL ...] --builtin data/synth-demo \
        --so762 data/so762-split/test [--shared ../shared/data] [--episodes 1000] \
        [--out runs/encoders-table.json]
    python experiments/encoders_table.py --print [--against MODEL] [--out runs/encoders-table.json]

MODEL is anything ``kws-proto eval`` scores: a run directory, ``default``, ``gse``, ``ewn``, a
fused model's folder; or ``mfcc-dtw``, the non-learned baseline (1-nearest support clip by DTW on
the default front end's MFCC, :mod:`kws_proto.eval.dtw`).  Each model goes through :func:`kws_proto.eval.evaluate.evaluate_run` with the
same seed, data and classes, so every row sees identical episodes and two rows' differences are
paired.  The test sets:

- FSDD digits, speaker-disjoint: 5-way 1-shot, 5-way 5-shot, 10-way 5-shot;
- Picovoice wake words (no speaker ids): 5-way 1-shot, 5-way 5-shot;
- the built-in corpus's test words (``--builtin``, e.g. the demo's ``data/synth-demo``; its
  ``splits.json`` test split): 5-way 1-shot, 5-way 5-shot;
- speechocean762's held-out speakers (``--so762``, ``experiments/fusion_split.py``'s ``test``),
  speaker-disjoint: 5-way 1-shot, 5-way 5-shot, 10-way 5-shot.

Rows accumulate in ``--out`` (a model scored again replaces its row); ``--print`` writes the
Markdown table, mean ± 95% CI over episodes, and each row's paired difference against
``--against`` on identical episodes.  Also recorded: the model's trainable parameters (frozen
members count as 0 trained) and its spotter's embedding time per 1 s clip.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from fusion_eval import ms_per_clip  # experiments/fusion_eval.py: the spotter's time per 1 s clip
from kws_proto.util.atomic import atomic_write_text

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PICOVOICE = ("alexa", "computer", "jarvis", "smart mirror", "snowboy", "view glass")
FSDD_CELLS = ((5, 1), (5, 5), (10, 5))
SHORT_CELLS = ((5, 1), (5, 5))
DTW = "mfcc-dtw"  # the non-learned baseline's row name


def test_sets(args) -> list[tuple]:
    """``(name, data_dir, classes, speaker_disjoint, cells)`` of each test set given."""
    sets = [("FSDD", args.shared / "fsdd", tuple(str(d) for d in range(10)), True, FSDD_CELLS),
            ("Picovoice", args.shared / "picovoice", PICOVOICE, False, SHORT_CELLS)]
    if args.builtin:
        sets.append(("built-in", args.builtin, None, False, SHORT_CELLS))
    if args.so762:
        sets.append(("speechocean762 held-out", args.so762, None, True, FSDD_CELLS))
    return sets


def parameters(model: str) -> int:
    """Trained parameters of ``model``: its encoder's weights, the head's on the speech embedding
    (``gse-head``), or the sum over a fusion's trained members (frozen embeddings count 0)."""
    from kws_proto.model.fusion import is_fusion, load_fusion
    from kws_proto.model.loading import load_run_network

    if model in ("gse", "gse-full", "ewn", "ewn-1.5s", DTW):
        return 0
    if model == "gse-head":  # its trained head; the speech embedding under it is frozen
        from kws_proto.model.gse_head import shipped_head

        h = shipped_head()
        return int(sum(np.size(a) for a in (h.w1, h.b1, h.w2, h.b2)))
    if is_fusion(model):
        return sum(parameters(m.model) for m in load_fusion(model).members)
    _, net = load_run_network(model)
    return int(sum(np.prod(v.shape) for v in net.encoder.weights))


def dtw_cell(data_dir, classes, disjoint: bool, setting) -> dict:
    """The MFCC + DTW baseline (:mod:`kws_proto.eval.dtw`, its measured-best setting) on one
    cell: the package's default front end, the same episodes as :func:`evaluate_run`'s."""
    from data_prep.adhoc import as_dataset
    from kws_proto.audio.features import FeatureConfig
    from kws_proto.data.experiment import open_data
    from kws_proto.eval.dtw import dtw_scores
    from kws_proto.eval.grid import eval_episodes

    data = open_data(as_dataset(data_dir), FeatureConfig(), None, disjoint, progress=False)
    episodes = eval_episodes(data, tuple(classes) if classes else data.splits.test, setting, 0)
    scores = dtw_scores(data.features, episodes)
    return {"mean": scores.summary.mean, "ci95": scores.summary.ci95,
            "accuracies": scores.accuracies.tolist()}


def score(model: str, sets, episodes: int) -> dict:
    """Every cell of every test set for ``model``: ``{"SET WwSs": {mean, ci95, accuracies}}``."""
    from kws_proto.eval.evaluate import evaluate_run, grid

    cells = {}
    for name, data, classes, disjoint, shapes in sets:
        for way, shot in shapes:
            setting = grid([way], [shot], 15, episodes)
            r = (dtw_cell(data, classes, disjoint, setting[0]) if model == DTW else
                 evaluate_run(model, setting, data_dir=data, classes=classes, seed=0,
                              speaker_disjoint=disjoint, progress=False)[0])
            cells[f"{name} {way}w{shot}s"] = {"mean": r["mean"], "ci95": r["ci95"],
                                              "accuracies": r["accuracies"]}
            print(model, name, f"{way}w{shot}s", f"{100 * r['mean']:.2f} ± {100 * r['ci95']:.2f}",
                  flush=True)
    return cells


def render(table: dict, against: str | None) -> str:
    """The Markdown table of every stored row (and paired differences against ``against``)."""
    from kws_proto.util.stats import paired_difference

    cells = list(next(iter(table.values()))["cells"])
    lines = ["| model | params | ms/clip | " + " | ".join(cells) + " |",
             "|---|---|---|" + "---|" * len(cells)]
    for model, row in table.items():
        out = []
        for c in cells:
            r = row["cells"].get(c)
            text = f"{100 * r['mean']:.1f} ± {100 * r['ci95']:.1f}" if r else "–"
            if r and against and against in table and model != against:
                d = paired_difference(r["accuracies"], table[against]["cells"][c]["accuracies"])
                text += f" ({100 * d.mean:+.1f} ± {100 * d.ci95:.1f})"
            out.append(text)
        lines.append(f"| {model} | {row['parameters']:,} | {row['ms_per_clip']:.2f} | " + " | ".join(out) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="*")
    p.add_argument("--shared", type=Path, default=Path("../shared/data"))
    p.add_argument("--builtin", type=Path, default=None, help="the built-in corpus folder (its test split)")
    p.add_argument("--so762", type=Path, default=None, help="speechocean762 held-out speakers' folder")
    p.add_argument("--episodes", type=int, default=1000)
    p.add_argument("--out", type=Path, default=Path("runs/encoders-table.json"))
    p.add_argument("--print", action="store_true", help="print the stored table as Markdown")
    p.add_argument("--against", default=None, help="paired differences against this row")
    a = p.parse_args()
    table = json.loads(a.out.read_text()) if a.out.is_file() else {}
    sets = test_sets(a)
    for model in a.models:
        t0 = time.perf_counter()
        row = {"cells": score(model, sets, a.episodes), "parameters": parameters(model),
               "ms_per_clip": float("nan") if model == DTW else ms_per_clip(model),
               "episodes": a.episodes, "seed": 0,
               "seconds": round(time.perf_counter() - t0, 1)}
        # read again: rows another command stored meanwhile stay; a row survives the next one failing
        table = json.loads(a.out.read_text()) if a.out.is_file() else {}
        table[model] = row
        a.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(a.out, json.dumps(table))
    if a.print and table:
        print(render(table, a.against))


if __name__ == "__main__":
    main()
