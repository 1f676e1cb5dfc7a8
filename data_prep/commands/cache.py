"""Build the caches a config's training reads from a prepared dataset folder, before training:
the feature cache of its front end (`features:`) and, when it augments, the waveform cache.

Several processes may then read DATASET at once (the workers of `kws-proto train --workers N`,
runs side by side): each finds the caches built and memory-maps them read-only.  Without this
command the first process to need a cache builds it while the others wait for it.
"""

from __future__ import annotations

import argparse

HELP = "build the feature (and waveform) caches a config trains from, into DATASET/.cache"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", metavar="DATASET", help="prepared dataset folder (has manifest.csv)")
    p.add_argument("config", metavar="CONFIG", help="experiment YAML whose front end and augmentation apply")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from kws_proto.config import load_config  # lazy: --help builds every parser
    from kws_proto.data.experiment import open_data  # lazy: --help builds every parser

    cfg = load_config(args.config)
    data = open_data(args.dataset, cfg.features, cfg.augment, progress=not args.quiet)
    for name, arr in (("features", data.features), ("waveforms", data.waveforms)):
        if arr is not None:
            print(f"{args.dataset}: {name} cache {arr.filename} {list(arr.shape)} {arr.dtype}")
    return 0
