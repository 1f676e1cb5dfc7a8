"""Measure spotting on a prepared dataset: seeded trials, each enrolling --keywords targets from
--shots clips and detecting them in a stream of other clips (other speakers when the manifest
has speaker ids, other files otherwise) with non-target words between random gaps. Prints recall
and false alarms per hour at the calibrated thresholds, recall at 10 and 50 false alarms per
hour on the DET curve (every threshold scaled by --factors), what the calibrated point's false
alarms fell on (words that are no target, targets, gaps; the most frequent keyword <- word
pairs), and writes the curve as JSON (--json) and a PNG (--plot). --compare scores more models
or decision variants
(MODEL@hop=0.05,min_hits=2,max_gap=0,min_db=-40,margin=1.5,negatives=200,quantile=0.01,
score=maxcos,label=NAME; negatives=N needs --cohort; score=maxcos scores by the cosine to the
nearest support clip instead of the distance to the prototype) on identical trials. See
kws_proto/eval/spot_eval.py.

With --sentences CORPUS (in place of --data) the keywords are enrolled from CORPUS/words/ and
detected in its read sentences (CORPUS/utterances/), scored against their word timings, with
recall at 10, 30 and 100 false alarms per hour and false alarms on keyword-free speech
(--background folders too).  See kws_proto/eval/sentence_eval.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

from kws_proto.errors import ConfigError
from kws_proto.eval.sentences import BACKGROUND_FILES, MIN_LETTERS
from kws_proto.eval.streams import (FACTORS, KEYWORDS, SEED, SHOTS, SUPPORT_SPEAKERS, TARGET_RATIO,
                                    TRIALS, WORDS)
from kws_proto.util.cli import (
    finite_float,
    fraction,
    nonnegative_int,
    number_list,
    positive_float,
    positive_int,
)

HELP = "benchmark keyword spotting on constructed streams or read sentences (DET curve)"
CLIP_ONLY = ("words", "target_ratio", "snr", "support_speakers")
SENTENCE_ONLY = ("min_letters", "background", "background_files")


def add_arguments(p) -> None:
    p.add_argument("model", help="a run directory or `default`, optionally MODEL@key=value,...")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--data", type=Path,
                       help="a prepared dataset folder, or a raw keyword folder (SRC/<keyword>/"
                            "*.wav or FSDD-style names; indexed into $KWS_PROTO_CACHE, "
                            "~/.cache/kws_proto when unset): streams of its clips")
    where.add_argument("--sentences", type=Path,
                       help="a sentence corpus (speechocean762's layout: utterances/text.tsv, "
                            "utterances/alignments.tsv, utterances/SPEAKER/UTT.flac, "
                            "words/WORD/*.flac): keywords of words/ spotted in its sentences")
    p.add_argument("--trials", type=positive_int, default=TRIALS, help="trials")
    p.add_argument("--keywords", type=positive_int, default=KEYWORDS,
                   help="target keywords enrolled per trial")
    p.add_argument("--shots", type=positive_int, default=SHOTS, help="support clips per keyword")
    p.add_argument("--support-speakers", choices=SUPPORT_SPEAKERS, default=None,
                   help="--data with speaker ids: each keyword enrolled from one speaker's clips "
                        "(default: `one`), or from one clip each of --shots speakers (`several`: "
                        "corpora where a speaker says each word once, like the built-in one); "
                        "the stream is spoken by none of them")
    p.add_argument("--words", type=positive_int, default=None,
                   help=f"words per stream (--data; default {WORDS})")
    p.add_argument("--target-ratio", type=fraction, default=None,
                   help=f"share of the stream's words that are targets (--data; default "
                        f"{TARGET_RATIO})")
    p.add_argument("--snr", type=finite_float, default=None,
                   help="mix in background noise at this SNR (dB); clean when not given")
    p.add_argument("--seed", type=nonnegative_int, default=SEED, help="trial seed")
    p.add_argument("--factors", type=number_list(positive_float), default=None,
                   help="threshold factors of the DET sweep, comma-separated (1 always added)")
    p.add_argument("--cohort", type=Path, default=None,
                   help="a prepared dataset of other words, for variants with negatives=N")
    p.add_argument("--min-letters", type=positive_int, default=None,
                   help=f"--sentences: shortest target word in letters (default {MIN_LETTERS})")
    p.add_argument("--background", type=Path, nargs="+", default=None, metavar="FOLDER",
                   help="--sentences: folders of speech without the keywords; every detection "
                        "in them is a false alarm")
    p.add_argument("--background-files", type=positive_int, default=None,
                   help=f"--sentences: audio files drawn (seeded) from each --background folder "
                        f"(default {BACKGROUND_FILES})")
    p.add_argument("--compare", nargs="+", default=[], metavar="MODEL",
                   help="more models or variants scored on the same trials")
    p.add_argument("--json", type=Path, nargs="?", const=Path("-"), default=None,
                   help="print the result as JSON (or write it to the path given)")
    p.add_argument("--plot", type=Path, default=None, help="write the DET curve to this PNG")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def _refuse(args, names: tuple[str, ...], why: str) -> None:
    given = [n for n in names if getattr(args, n) is not None]
    if given:
        raise ConfigError(f"--{given[0].replace('_', '-')} is for {why}")


def _sentences(args, progress):
    """The sentence benchmark of ``args``."""
    # lazy: --help builds every parser
    from kws_proto.eval.sentence_eval import sentence_eval

    if not args.sentences.is_dir():
        raise ConfigError(f"--sentences={args.sentences}: no such folder")
    for folder in args.background or ():
        if not folder.is_dir():
            raise ConfigError(f"--background {folder}: no such folder")
    return sentence_eval(
        args.sentences, [args.model] + list(args.compare), trials=args.trials,
        keywords=args.keywords, shots=args.shots, seed=args.seed,
        factors=args.factors if args.factors is not None else FACTORS,
        min_letters=args.min_letters if args.min_letters is not None else MIN_LETTERS,
        cohort=args.cohort, background=args.background or (),
        background_files_per_folder=(args.background_files if args.background_files is not None
                                     else BACKGROUND_FILES), progress=progress)


def run(args) -> int:
    from kws_proto.eval.spot_eval import spot_eval  # lazy: --help builds every parser

    # lazy: --help builds every parser
    from kws_proto.eval.spot_report import det_plot, table, to_json

    if args.plot is not None and args.plot.suffix.lower() != ".png":
        raise ConfigError(f"--plot={args.plot}: give a path ending in .png")
    if args.sentences is not None:
        _refuse(args, CLIP_ONLY, "the clip streams of --data")
    else:
        _refuse(args, SENTENCE_ONLY, "--sentences")
    if args.cohort is not None and not args.cohort.is_dir():
        raise ConfigError(f"--cohort={args.cohort}: no such dataset folder")
    progress = None if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    result = (_sentences(args, progress) if args.sentences is not None else
              spot_eval(args.data, [args.model] + list(args.compare), trials=args.trials,
                        keywords=args.keywords, shots=args.shots,
                        words=args.words if args.words is not None else WORDS,
                        target_ratio=(args.target_ratio if args.target_ratio is not None
                                      else TARGET_RATIO), snr=args.snr, seed=args.seed,
                        factors=args.factors if args.factors is not None else FACTORS,
                        cohort=args.cohort, progress=progress,
                        support_speakers=args.support_speakers or "one"))
    if args.plot is not None:
        det_plot(result, args.plot)
    if args.json is not None and str(args.json) == "-":
        print(to_json(result))
        return 0
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(to_json(result) + "\n", encoding="utf-8")
    print(table(result))
    if args.plot is not None:
        print(f"DET curve: {args.plot}")
    return 0
