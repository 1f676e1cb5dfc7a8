"""Fuse trained encoders with frozen embeddings into one model, training nothing.

Each member (a run directory, `protores_synth` (the shipped trained encoder), `gse`, `gse-head` or `ewn`) embeds --clips clips of --centre-data drawn by
--seed; its mean embedding is its centre.  A clip's fused embedding is the concatenation over
members of sqrt(w) * unit(embedding - centre), so the squared distance the spotter and `eval`
compare is the weighted sum of the members' squared distances (kws_proto/model/fusion.py).  OUT
holds fusion.json: the members, their weights fingerprints, centres and weights, and the centre
corpus (path, clips, seed); `eval`, `enroll`, `classify`, `detect` and `spot-eval` take OUT as
the model.  Take the centres from speech that is not scored afterwards.
"""

from __future__ import annotations

from pathlib import Path

from kws_proto.util.cli import nonnegative_float, nonnegative_int, number_list, positive_int

HELP = "fuse models (a run or `protores_synth`, `gse`, `gse-head`, `ewn`) into one by centred unit embeddings"


def add_arguments(p) -> None:
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="two or more members: run directories, `protores_synth`, `gse`, `gse-head`, `ewn`")
    p.add_argument("--centre-data", type=Path, required=True, metavar="DIR",
                   help="a folder of audio files (recursively) the centres are taken from")
    p.add_argument("--clips", type=positive_int, default=1000,
                   help="clips of --centre-data each centre is the mean of (all when fewer)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed drawing the clips")
    p.add_argument("--weights", type=number_list(nonnegative_float), default=None,
                   help="comma-separated weight of each member's squared distance (default: all 1)")
    p.add_argument("--out", type=Path, required=True, help="the fused model's folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    from kws_proto.spot.fusion import fuse_models  # lazy: TensorFlow, LiteRT

    fusion = fuse_models(args.models, args.centre_data, args.out, weights=args.weights,
                         clips=args.clips, seed=args.seed, progress=not args.quiet)
    parts = ", ".join(f"{m.model} ({m.dim}-d, weight {m.weight:g})" for m in fusion.members)
    print(f"fused {parts} into {args.out}: {fusion.dim}-d, centres from "
          f"{fusion.centre_data['clips']} clips of {fusion.centre_data['path']} (seed "
          f"{args.seed}); fingerprint {fusion.fingerprint[:16]}")
    return 0
