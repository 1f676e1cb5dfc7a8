"""Merge prepared dataset folders: BASE keeps its split, the keywords of each EXTRA folder become
training classes (e.g. the built-in corpus plus real wake-word recordings).  OUT holds symbolic
links to the sources, one manifest and one split; no audio is copied or decoded again.  A word
found in several sources (compared exactly, case included) is one class with every source's clips;
the extras' clips of a word BASE validates, tests or pools as unknown are left out and counted.
--keep-apart keeps each extra's copy as its own training class NAME:WORD (NAME: its folder name)
instead.
"""

from __future__ import annotations

import argparse

HELP = "merge dataset folders: BASE's split plus EXTRA folders' words as training classes"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", metavar="OUT", help="dataset folder to write")
    p.add_argument("base", metavar="BASE", help="prepared dataset folder whose split is kept")
    p.add_argument("extras", metavar="EXTRA", nargs="+",
                   help="prepared dataset folder(s) whose keywords become training classes; a word "
                        "found in several sources is one class, except that the extras' clips of "
                        "BASE's validation, test and unknown words are left out")
    p.add_argument("--keep-apart", action="store_true",
                   help="keep a word found in several sources apart: each EXTRA's clips of it "
                        "become the training class NAME:WORD (NAME: its folder name); nothing "
                        "is left out")


def _summary(out: str, r: dict) -> list[str]:
    """The lines printed after a merge."""
    c, sources = r["counts"], r["merge"]["sources"]
    added = ", ".join(f"{s['name']} ({s['used_clips']} clips, {s['used_keywords']} words)"
                      for s in sources[1:])
    lines = [f"merged into {out}: {c['clips']} clips, {c['keywords']} keywords "
             f"({c['train']} train / {c['validation']} validation / {c['test']} test); added {added}"]
    if c["shared_words"]:
        how = "kept apart as NAME:WORD" if r["merge"]["keep_apart"] else (
            f"{c['joined_words']} joined ({c['joined_clips']} clips of the extras), "
            f"{c['left_out_words']} left out ({c['left_out_clips']} clips: BASE holds them out)")
        lines.append(f"{c['shared_words']} words in more than one source: {how}")
    for s in sources[1:]:
        left = s["left_out"]
        if left["clips"]:
            words = sorted(left["words"])
            shown = ", ".join(words[:20]) + (f", ... ({len(words)} words)" if len(words) > 20 else "")
            lines.append(f"left out {left['clips']} clips of {s['name']} in BASE's validation, "
                         f"test or unknown words: {shown}")
        if s["held_out_trained"]:
            lines.append(f"note: {s['name']}'s copies of BASE's held-out words train as "
                         f"{s['name']}:WORD ({sum(s['held_out_trained'].values())} clips)")
    for case in r["merge"]["case_only"]:
        lines.append(f"note: {' / '.join(case['words'])} differ only in case: kept as "
                     f"different words ({', '.join(case['sources'])})")
    return lines


def run(args: argparse.Namespace) -> int:
    from data_prep.merge import merge_datasets  # lazy: --help builds every parser

    r = merge_datasets(args.out, args.base, args.extras, keep_apart=args.keep_apart)
    print("\n".join(_summary(args.out, r)))
    return 0
