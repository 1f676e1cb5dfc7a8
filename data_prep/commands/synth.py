"""Synthesise the built-in corpus with eSpeak NG (no download) in Speech Commands layout.

With --flite-speakers N, N CMU Flite voice settings (the system's `flite`: voices kal16, awb, slt,
rms at several pitches and speeds) say every word as well.

Every speaker (accent x voice variant x speed x pitch, named by a hash of the setting) says every
word once; clips are 16 kHz, 1 s, the word at a random offset.  OUT gets WORD/HASH_nohash_0.wav,
validation_list.txt, testing_list.txt, _background_noise_/ (white, pink, brown, hum, babble),
manifest.csv, report.json and a seeded class split in splits.json.  The default word list has 280
English words, none of the 35 Speech Commands words, the digits or the Picovoice wake words.
"""

from __future__ import annotations

import argparse
import time

from kws_proto.util.cli import nonnegative_int, positive_float, positive_int

HELP = "build the built-in eSpeak NG corpus (default dataset, no download)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", metavar="OUT", help="dataset folder to write")
    p.add_argument("--words", type=positive_int, default=200,
                   help="words used: a seeded pick from the word list (all of it when shorter)")
    p.add_argument("--speakers", type=positive_int, default=50, help="speakers (voice settings); each says every word")
    p.add_argument("--flite-speakers", type=nonnegative_int, default=0,
                   help="CMU Flite voice settings (0-65) saying every word too; needs `apt-get install flite`")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="fixes words, speakers, offsets, gains, noise and split")
    p.add_argument("--words-file", metavar="FILE", default=None,
                   help="word list to use instead of the built-in one (one word per line, # comments)")
    p.add_argument("--workers", type=positive_int, default=2, help="synthesis processes")
    p.add_argument("--noise-seconds", type=positive_float, default=30.0, help="length of each background-noise recording")
    p.add_argument("--overwrite", action="store_true",
                   help="replace OUT when it is a previous dataset folder (else OUT must be new or empty)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:

    from data_prep.synth import SynthConfig, build_synth  # lazy: --help builds every parser
    from data_prep.words import DEFAULT_WORDS, load_words_file  # lazy: --help builds every parser

    t0 = time.perf_counter()
    words = tuple(load_words_file(args.words_file)) if args.words_file else DEFAULT_WORDS
    cfg = SynthConfig(n_words=min(args.words, len(words)), n_speakers=args.speakers, seed=args.seed,
                      words=words, flite_speakers=args.flite_speakers,
                      noise_seconds=args.noise_seconds, workers=args.workers)
    result = build_synth(args.out, cfg, progress=not args.quiet, overwrite=args.overwrite)
    info = result.report["synth"]
    n_words, n_speakers = len(info["words"]), len(info["speakers"])
    rate = info["clips_written"] / max(info["synthesis_cpu_seconds"], 1e-9)
    print(f"wrote {len(result.clips)} clips ({n_words} words x {n_speakers} speakers) to {args.out} "
          f"in {time.perf_counter() - t0:.1f} s (synthesis {info['synthesis_seconds']:.1f} s on "
          f"{info['workers']} worker(s), {rate:.0f} clips per CPU-second, {info['backend']})")
    if info["dropped"] or info["sped_up"]:
        print(f"{info['sped_up']} clip(s) re-synthesised faster to fit, {len(info['dropped'])} dropped "
              "(see report.json)")
    return 0
