"""Per-member score normalisation of a fused model against its shipped background, beside the
s-norm of the fused distance, ranked on held-out clips (experiments/spotting.md, "Each member
normalised on its own: not kept").

The same keywords, draws, supports and negatives as ``clf_proxy.py``.  A fused model's squared
distance is the weighted sum of its members' (kws_proto/model/fusion.py); here each member's
distance is also s-normed on its own (its ``TOP`` nearest background windows by that member),
and the members' z combined by their mean (every member counts alike) or their maximum (a window
must be near the keyword in every member).  Each member's own z is scored too.  True-positive
rate at 1 % and 0.1 % false positives, mean over keywords and draws.

    python experiments/member_norm_proxy.py ../shared/data/picovoice --others data/so762-split/test
"""

from __future__ import annotations

import numpy as np

from clf_proxy import keyword_draws, proxy_parser, tpr_at
from kws_proto.model.fusion import load_fusion
from kws_proto.model.pretrained import resolve_model
from kws_proto.spot.cohort import TOP
from kws_proto.spot.spotter import KeywordSpotter


def member_slices(model: str) -> dict[str, slice]:
    """``{member: columns}`` of a fused model's embedding."""
    out, start = {}, 0
    for m in load_fusion(resolve_model(model)).members:
        out[m.model], start = slice(start, start + m.dim), start + m.dim
    return out


def snorm_z(proto: np.ndarray, bg: np.ndarray, e: np.ndarray) -> np.ndarray:
    """``e``'s squared distances to ``proto``, s-normed on its :data:`TOP` nearest ``bg`` rows."""
    near = np.sort(((bg - proto) ** 2).sum(axis=1))[:TOP]
    return (((e - proto) ** 2).sum(axis=1) - near.mean()) / near.std()


def main() -> None:
    p = proxy_parser(__doc__)
    p.add_argument("--model", default="default", help="a fused model with a shipped background")
    a = p.parse_args()
    spotter = KeywordSpotter.from_model(a.model)
    bg = spotter.shipped_background.embeddings.astype(np.float64)
    cols = member_slices(a.model)
    rules = ["fused distance, s-normed", "members' z, mean", "members' z, max", *cols]
    scores: dict[str, list] = {r: [] for r in rules}
    for _, proto, _, held, neg in keyword_draws(spotter, a.corpus, a.others):
        z = {}
        for e, side in ((held, "pos"), (neg, "neg")):
            z[side] = {"fused distance, s-normed": snorm_z(proto, bg, e)}
            z[side].update({m: snorm_z(proto[c], bg[:, c], e[:, c]) for m, c in cols.items()})
            each = np.stack([z[side][m] for m in cols])
            z[side]["members' z, mean"], z[side]["members' z, max"] = each.mean(0), each.max(0)
        for r in rules:
            scores[r].append(tpr_at(-z["pos"][r], -z["neg"][r]))
    for r in rules:
        tpr = np.mean(scores[r], axis=0) * 100
        print(f"{a.corpus.name} {r}: TPR at 1 % / 0.1 % FPR {tpr[0]:.1f} / {tpr[1]:.1f} % "
              f"({len(scores[r])} keyword draws)")


if __name__ == "__main__":
    main()
