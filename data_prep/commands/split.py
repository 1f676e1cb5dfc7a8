"""Write a few-shot class split (DIR/splits.json): every keyword in exactly one of train /
validation / test (/ unknown).

Protocols: "random" (seeded, --validation/--test/--train classes), "explicit" (--test-words,
optionally --validation-words/--train-words; implied by --test-words), "parnami" and "core" (Speech
Commands, see `kws-prep speech-commands --help`), "test-only" (every keyword a test class).
"""

from __future__ import annotations

import argparse

from kws_proto.errors import ConfigError
from kws_proto.util.cli import nonnegative_int, positive_int

HELP = "write a keyword-class split into a prepared dataset folder"


def _words(text: str | None) -> list[str] | None:
    return None if text is None else [w.strip() for w in text.split(",") if w.strip()]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", metavar="DIR", help="prepared dataset folder (has manifest.csv)")
    p.add_argument("--protocol", choices=("random", "explicit", "parnami", "core", "test-only"),
                   default="random", help="how classes are assigned")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of every random choice")
    p.add_argument("--validation", type=nonnegative_int, default=5, help="random/explicit: validation classes")
    p.add_argument("--test", type=nonnegative_int, default=5, help="random: test classes")
    p.add_argument("--train", type=nonnegative_int, default=0, help="random: training classes (0: all the rest)")
    p.add_argument("--test-words", default=None, help="explicit: comma-separated test keywords")
    p.add_argument("--validation-words", default=None,
                   help="explicit: comma-separated validation keywords; when absent, --validation seeded picks")
    p.add_argument("--train-words", default=None,
                   help="explicit: comma-separated training keywords; when absent, all the rest")
    p.add_argument("--min-speakers", type=positive_int, default=1000, help="parnami: speakers a word needs")


def run(args: argparse.Namespace) -> int:
    from data_prep import splits as sp  # lazy: --help builds every parser

    # lazy: --help builds every parser
    from kws_proto.data.dataset import load_manifest, write_splits

    manifest = load_manifest(args.dir)
    keywords = manifest.keywords
    protocol = "explicit" if args.test_words is not None else args.protocol
    if protocol == "random":
        s = sp.random_split(keywords, args.validation, args.test, args.train or None, seed=args.seed)
    elif protocol == "explicit":
        if not _words(args.test_words):
            raise ConfigError("--protocol explicit needs --test-words w1,w2,...")
        s = sp.explicit_split(keywords, _words(args.test_words), _words(args.validation_words),
                              _words(args.train_words), n_validation=args.validation, seed=args.seed)
    elif protocol == "parnami":
        s = sp.parnami_split(manifest, seed=args.seed, min_speakers=args.min_speakers)
    elif protocol == "core":
        s = sp.core_split(keywords, seed=args.seed, n_validation=args.validation)
    else:
        s = sp.all_test_split(keywords)
    path = write_splits(args.dir, s)
    print(f"{path}: {s.protocol} split, {len(s.train)} train / {len(s.validation)} validation / "
          f"{len(s.test)} test / {len(s.unknown)} unknown classes; test: {', '.join(s.test)}")
    return 0
