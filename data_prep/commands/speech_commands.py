"""Download (or take --archive), verify, safely extract and index Google Speech Commands.

The archive's size and SHA-256 are checked against the published values of the chosen version;
members that would land outside OUT are refused.  OUT gets the corpus, manifest.csv (speaker = the
hash in each file name), report.json and splits.json for --protocol: "core" (test on the ten
command words), "parnami" (Parnami & Lee: 5 test / 5 validation / rest over words with at least
--min-speakers speakers, the other words as "unknown"), "random" or "none".
"""

from __future__ import annotations

import argparse
import time

from kws_proto.util.cli import nonnegative_int, positive_float, positive_int

NAME = "speech-commands"
HELP = "prepare Google Speech Commands v1 or v2 (download or --archive)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", metavar="OUT", help="dataset folder to write")
    p.add_argument("--version", type=int, choices=(1, 2), default=2, help="Speech Commands release")
    p.add_argument("--archive", metavar="FILE", default=None, help="archive already on disk (no download)")
    p.add_argument("--sha256", metavar="HEX", default=None,
                   help="expected SHA-256 of --archive instead of the published one (e.g. a mirror)")
    p.add_argument("--url", default=None, help="download from this address instead of the official one")
    p.add_argument("--timeout", type=positive_float, default=10.0, help="network timeout in seconds")
    p.add_argument("--keep-archive", action="store_true", help="keep a downloaded archive after extraction")
    p.add_argument("--protocol", choices=("core", "parnami", "random", "none"), default="core",
                   help="class split written to splits.json")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the class split")
    p.add_argument("--min-speakers", type=positive_int, default=1000, help="parnami: speakers a word needs")
    p.add_argument("--one-clip-per-speaker", action="store_true",
                   help="keep one take per speaker and word (Parnami & Lee)")
    p.add_argument("--strict", action="store_true", help="fail on any unusable clip instead of skipping it")
    p.add_argument("--workers", type=positive_int, default=2, help="processes checking the clips")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:

    # lazy: --help builds every parser
    from data_prep.speech_commands import prepare_speech_commands

    t0 = time.perf_counter()
    r = prepare_speech_commands(
        args.out, args.version, archive=args.archive, sha256=args.sha256, url=args.url,
        keep_archive=args.keep_archive, strict=args.strict, protocol=args.protocol, seed=args.seed,
        min_speakers=args.min_speakers, one_per_speaker=args.one_clip_per_speaker,
        workers=args.workers, progress=not args.quiet, timeout=args.timeout,
    )
    c = r.report["counts"]
    print(f"indexed {c['kept']} clips of {c['keywords']} keywords and {c['speakers']} speakers into "
          f"{args.out} in {time.perf_counter() - t0:.1f} s; {c['skipped']} unusable file(s) skipped "
          f"(see report.json)")
    return 0
