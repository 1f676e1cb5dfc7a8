"""Merge prepared dataset folders: BASE keeps its split, every keyword of each EXTRA folder becomes
a training class (e.g. the built-in corpus plus real wake-word recordings).  OUT holds symbolic
links to the sources, one manifest and one split; no audio is copied or decoded again.  A keyword
found in two sources is an error naming it.
"""

from __future__ import annotations

import argparse

HELP = "merge dataset folders: BASE's split plus EXTRA folders' words as training classes"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", metavar="OUT", help="dataset folder to write")
    p.add_argument("base", metavar="BASE", help="prepared dataset folder whose split is kept")
    p.add_argument("extras", metavar="EXTRA", nargs="+",
                   help="prepared dataset folder(s) whose keywords all become training classes")


def run(args: argparse.Namespace) -> int:
    from data_prep.merge import merge_datasets  # lazy: --help builds every parser

    r = merge_datasets(args.out, args.base, args.extras)
    c = r["counts"]
    added = ", ".join(f"{s['name']} ({s['clips']} clips, {s['keywords']} words)"
                      for s in r["merge"]["sources"][1:])
    print(f"merged into {args.out}: {c['clips']} clips, {c['keywords']} keywords "
          f"({c['train']} train / {c['validation']} validation / {c['test']} test); added {added}")
    return 0
