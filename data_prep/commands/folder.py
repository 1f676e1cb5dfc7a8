"""Index any folder of keyword recordings: SRC/<keyword>/*.{wav,flac,ogg} or FSDD-style flat files.

Flat files named {label}_{speaker}_{n}.wav give keyword and speaker; folder names may hold
spaces.  Each file is decoded once; a corrupt, empty or unreadable one, and one that cannot hold a
word (silent: its loudest 0.1 s below -50 dBFS, the detector's level gate; or shorter than 0.1 s),
is named in report.json, skipped and counted (--strict: fail instead).  The audio is written into OUT (--audio convert:
16-bit WAV at --sr, recordings longer than --duration cut to their loudest part; or copy / link /
symlink the originals).  A "test-only" split is written (change it with `kws-prep split`).
"""

from __future__ import annotations

import argparse
import time

from kws_proto.util.cli import nonnegative_float, positive_int

HELP = "index a folder of keyword recordings (e.g. FSDD, Picovoice)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", metavar="SRC", help="folder of recordings")
    p.add_argument("out", metavar="OUT", help="dataset folder to write (not inside SRC)")
    p.add_argument("--audio", choices=("convert", "copy", "link", "symlink"), default="convert",
                   help="how the audio gets into OUT")
    p.add_argument("--sr", type=positive_int, default=16000, help="sample rate of converted clips")
    p.add_argument("--duration", type=nonnegative_float, default=1.0,
                   help="converted recordings longer than this keep their loudest part (0: keep all)")
    p.add_argument("--strict", action="store_true", help="fail on any unusable file instead of skipping it")
    p.add_argument("--workers", type=positive_int, default=2, help="processes reading the files")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:

    from data_prep.folder import index_folder  # lazy: --help builds every parser

    t0 = time.perf_counter()
    r = index_folder(args.src, args.out, mode=args.audio, sr=args.sr, duration=args.duration,
                     strict=args.strict, workers=args.workers, progress=not args.quiet)
    c = r.report["counts"]
    print(f"indexed {c['kept']} of {c['found']} clips ({c['keywords']} keywords, {c['speakers']} "
          f"speakers) into {args.out} in {time.perf_counter() - t0:.1f} s; {c['skipped']} unusable "
          f"({c['silent_or_short']} of them silent or shorter than a word) and {c['ignored']} "
          "other file(s) left out (see report.json)")
    for s in r.skipped:
        print(f"  skipped {s.path}: {s.reason}")
    return 0
