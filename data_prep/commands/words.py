"""A keyword corpus from transcribed speech: force-align every sentence, cut out every word.

SRC is a TSV file (path, text, speaker columns; paths relative to it), a Kaldi data folder (text,
wav.scp, utt2spk), a LibriSpeech folder (*.trans.txt) or a Common Voice folder or TSV (path,
sentence, client_id; audio in clips/).  Alignment runs offline with PocketSphinx's en-us model
(pip install 'kws_proto[align]').  A sentence with a word the dictionary lacks (give --lexicon),
unreadable audio, no speaker or a transcript that does not align is named in report.json, skipped
and counted.  OUT gets <word>/ clips (16 kHz WAV), manifest.csv, a test-only splits.json,
alignments.tsv (utterance, word, start, end) and report.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from kws_proto.util.cli import nonnegative_float, nonnegative_int, positive_int

HELP = "a keyword corpus from transcribed speech (TSV, Kaldi, LibriSpeech, Common Voice)"
FORMATS = ("auto", "tsv", "kaldi", "librispeech", "commonvoice")


def word_set(text: str) -> frozenset[str]:
    """Words of a comma-separated list, or of a file (one or more a line, commas or spaces)."""
    p = Path(text)
    source = p.read_text(encoding="utf-8") if p.is_file() else text
    return frozenset(w.strip().lower() for w in source.replace(",", " ").split() if w.strip())


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", metavar="SRC", help="transcribed speech: a TSV file or a corpus folder")
    p.add_argument("out", metavar="OUT", help="dataset folder to write")
    p.add_argument("--format", choices=FORMATS, default="auto", help="layout of SRC")
    p.add_argument("--lexicon", metavar="FILE",
                   help="pronunciations for words the dictionary lacks (CMUdict lines: WORD PH ON ES)")
    p.add_argument("--pad", type=nonnegative_float, default=50.0, help="ms of audio kept either side of a word")
    p.add_argument("--min-clips", type=positive_int, default=1, help="drop words with fewer clips")
    p.add_argument("--max-per-speaker", type=nonnegative_int, default=0,
                   help="at most this many clips of a word per speaker, drawn with --seed (0: all)")
    p.add_argument("--words", type=word_set, metavar="LIST|FILE", help="keep only these words")
    p.add_argument("--exclude", type=word_set, metavar="LIST|FILE", default=frozenset(),
                   help="leave these words out")
    p.add_argument("--seed", type=int, default=0, help="seed of the --max-per-speaker draw")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:

    from data_prep.words_corpus.align import read_lexicon  # lazy: --help builds every parser
    from data_prep.words_corpus.build import WordOptions, build_words_corpus  # lazy: --help builds every parser

    t0 = time.perf_counter()
    opts = WordOptions(pad_ms=args.pad, min_clips=args.min_clips, max_per_speaker=args.max_per_speaker,
                       keep=args.words, exclude=args.exclude, seed=args.seed)
    lexicon = read_lexicon(args.lexicon) if args.lexicon else None
    r = build_words_corpus(args.src, args.out, fmt=args.format, lexicon=lexicon, options=opts,
                           progress=not args.quiet)
    c = r["counts"]
    print(f"aligned {c['aligned']} of {c['utterances']} utterances into {c['clips']} clips of "
          f"{c['words_kept']} words ({c['speakers']} speakers) in {args.out} in "
          f"{time.perf_counter() - t0:.1f} s; {c['skipped']} utterances skipped "
          f"{c['skipped_by_reason']}, {c['unusable_clips']} silent or short clips and "
          f"{c['words_dropped']} words left out {c['words_dropped_by_reason']} (see report.json)")
    for s in r["skipped"]:
        print(f"  skipped {s['utterance']}: {s['reason']}")
    return 0
