"""Draw a word list for synthesised training corpora from the CMU Pronouncing Dictionary that
ships in the ``pocketsphinx`` wheel (the ``align`` extra), leaving out every word a benchmark
here scores or could score.

    python experiments/words/cmudict_words.py ../shared/data --count 1500 --seed 0 \
        --out experiments/words/cmudict1500.txt

Kept: entries of 4 to 9 letters a-z, the first pronunciation only, with 2 to 8 phones.  Left out:
the words of ``experiments/words/large.txt`` (already trained on), the 35 Speech Commands words,
the digits and "oh", every word of the Picovoice wake words, every word of speechocean762
(its ``words/`` folders and every word of its ``utterances/text.tsv``) and FSDD's digits.  A
seeded draw of ``--count`` of the rest, written sorted with the rule in its header.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np

from data_prep.words import EXCLUDED, HOMOPHONES, load_words_file

HERE = Path(__file__).resolve().parent


def dictionary_path() -> Path:
    import pocketsphinx  # the `align` extra

    return Path(pocketsphinx.__file__).parent / "model" / "en-us" / "cmudict-en-us.dict"


def listed(path: Path) -> set[str]:
    """The words of a word list (:func:`data_prep.words.load_words_file`, nothing refused)."""
    return {w.lower() for w in load_words_file(path, exclude=frozenset())}


def excluded(shared: Path) -> set[str]:
    """Every word a draw leaves out: ``large.txt``'s, the built-in corpus's refusals
    (:data:`data_prep.words.EXCLUDED`: Speech Commands, digits, Picovoice wake words; its
    homophones of those are not refused here, as when ``cmudict1500.txt`` was drawn) and
    speechocean762's (its word folders and every word of its sentences)."""
    words = listed(HERE / "large.txt") | (EXCLUDED - set(HOMOPHONES))
    so = shared / "speechocean762"
    words |= {d.name.lower() for d in (so / "words").iterdir() if d.is_dir()}
    for line in (so / "utterances" / "text.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        words |= set(re.findall(r"[a-z']+", line.split("\t")[-1].lower()))
    return words


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("shared", type=Path, help="the shared data folder (picovoice, speechocean762)")
    p.add_argument("--count", type=int, default=1500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--skip", type=Path, nargs="*", default=[],
                   help="word lists whose words are left out too (e.g. an earlier draw)")
    args = p.parse_args(argv)
    skip = excluded(args.shared)
    for path in args.skip:
        skip |= listed(path)
    pool = {}
    for line in dictionary_path().read_text(encoding="utf-8").splitlines():
        word, *phones = line.split()
        if word in pool or not re.fullmatch(r"[a-z]{4,9}", word) or word in skip:
            continue
        if 2 <= len(phones) <= 8:
            pool[word] = phones
    names = sorted(pool)
    pick = sorted(np.random.default_rng(args.seed).choice(names, args.count, replace=False).tolist())
    header = (f"# {args.count} words drawn (seed {args.seed}) from {len(names)} entries of the CMU "
              "Pronouncing Dictionary in the pocketsphinx wheel:\n# 4-9 letters, 2-8 phones, none of "
              "large.txt, the Speech Commands words, the digits, the Picovoice wake words or\n# any "
              "speechocean762 word" + "".join(f", nor of {p.name}" for p in args.skip)
              + ". Made by experiments/words/cmudict_words.py (see its docstring).\n")
    args.out.write_text(header + "\n".join(pick) + "\n", encoding="utf-8")
    print(f"{args.out}: {len(pick)} of {len(names)} words ({len(skip)} left out)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
