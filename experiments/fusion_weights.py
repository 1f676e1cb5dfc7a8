"""A fused model's member weights, swept on the encoder table's test sets and episodes.

    python experiments/fusion_weights.py default --weights 1,1,1 1,1,1.5 1.3,1,1 \
        --builtin data/synth-demo --so762 data/so762-split/test [--shared ../shared/data] [--episodes 1000]

Each member's table is computed once per cell (:func:`kws_proto.eval.fusion.member_tables`,
centred on the member's stored centre and scaled to unit length), then every weight vector is
scored on the same episodes (seed 0, as ``experiments/encoders_table.py``): the squared
distance of the fused embedding is ``sum_i w_i d_i``, as if the model had been fused with
``--weights``.  Prints one line per cell: the accuracy % of each weight vector.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from encoders_table import test_sets  # experiments/encoders_table.py: the four test sets

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def sweep(fusion, sets, weights, episodes: int) -> dict:
    """``{"SET WwSs": [accuracy of each weight vector]}`` on identical episodes."""
    from data_prep.adhoc import as_dataset
    from kws_proto.eval.fusion import member_tables
    from kws_proto.eval.grid import grid, score_grid
    from kws_proto.model.fusion import centred_unit

    out = {}
    for name, data_dir, classes, disjoint, shapes in sets:
        data_dir = as_dataset(data_dir)
        parts = [member_tables(m.model, m.fingerprint, data_dir, disjoint, False)
                 for m in fusion.members]
        data = parts[0][0]
        chosen = tuple(classes) if classes else data.splits.test
        for way, shot in shapes:
            tables = {}

            def member_units(eps):
                if "t" not in tables:
                    tables["t"] = [centred_unit(np.asarray(table_for(eps)), m.centre)
                                   for (_, table_for), m in zip(parts, fusion.members)]
                return tables["t"]

            row = []
            for w in weights:
                def fused(eps, w=w):
                    return np.concatenate([np.float32(np.sqrt(wi)) * t
                                           for wi, t in zip(w, member_units(eps))], 1)

                r = score_grid(fused, data, chosen, grid([way], [shot], 15, episodes), 0)[0]
                row.append(r["mean"])
            out[f"{name} {way}w{shot}s"] = row
            print(f"{name} {way}w{shot}s: " + " | ".join(
                f"{','.join(f'{x:g}' for x in w)} {100 * a:.2f}" for w, a in zip(weights, row)),
                flush=True)
    return out


def main() -> None:
    from kws_proto.model.fusion import load_fusion
    from kws_proto.model.pretrained import resolve_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="a fused model: `default` or a folder `kws-proto fuse` wrote")
    p.add_argument("--weights", nargs="+", required=True, help="comma-separated, one per member")
    p.add_argument("--shared", type=Path, default=Path("../shared/data"))
    p.add_argument("--builtin", type=Path, default=None)
    p.add_argument("--so762", type=Path, default=None)
    p.add_argument("--episodes", type=int, default=1000)
    args = p.parse_args()
    fusion = load_fusion(resolve_model(args.model))
    weights = [tuple(float(x) for x in w.split(",")) for w in args.weights]
    bad = [w for w in weights if len(w) != len(fusion.members) or min(w) < 0 or max(w) == 0]
    if bad:
        p.error(f"--weights {bad}: {len(fusion.members)} non-negative numbers each, not all 0")
    sweep(fusion, test_sets(args), weights, args.episodes)


if __name__ == "__main__":
    main()
