"""Export the embedding model with the front end inside it: raw 16 kHz audio in, embedding out.

savedmodel: a folder with the signature serving_default(audio [None, num_samples] float32) ->
{"embedding": [None, d]}; tflite: one .tflite file with the same signature and TFLite built-in
ops only (its spectrum is a DFT by matrix product).  Metadata beside it (OUT/kws_export.json or
OUT.json) records the front end, the embedding size and the weights fingerprint a bank checks.
"""

from __future__ import annotations

from pathlib import Path

HELP = "export the encoder with its in-graph front end (SavedModel or TFLite)"


def add_arguments(p) -> None:
    p.add_argument("model", help="a run directory or `protores_synth` (the shipped trained encoder)")
    p.add_argument("out", type=Path, help="output folder (savedmodel) or file (tflite)")
    p.add_argument("--format", choices=("savedmodel", "tflite"), default="savedmodel",
                   help="export format")
    p.add_argument("--force", action="store_true", help="overwrite OUT if it exists")


def run(args) -> int:
    from kws_proto.spot.export import export_model  # lazy: --help builds every parser
    from kws_proto.spot.spotter import KeywordSpotter  # lazy: --help builds every parser

    spotter = KeywordSpotter.from_model(args.model)
    out = export_model(spotter, args.out, args.format, force=args.force)
    f = spotter.features
    print(f"exported {args.format} to {out}: audio [batch, {f.num_samples}] float32 at "
          f"{f.sample_rate} Hz -> embedding [batch, {spotter.embedding_dim}]; "
          f"weights fingerprint {spotter.fingerprint[:16]}")
    return 0
