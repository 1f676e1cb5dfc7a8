"""Word streams of speechocean762's held-out speakers: the spotting benchmark nearest to short
command words spoken by people none of the models heard (experiments/spotting.md, "Short words of
held-out speakers").

From the held-out half of experiments/fusion_split.py (OUT/test/<word>/<word>_<speaker>_<n>.flac),
the words of at least --min-letters letters that no built-in vocabulary holds (the default word
list and experiments/words/large.txt: every trained member's and the head's words) and that at
least --min-speakers speakers said are linked into DEST/<word>/ (symbolic links, the same names),
a raw keyword folder for `kws-proto spot-eval --data DEST --keywords 1 --support-speakers several`.

    python experiments/so762_streams.py data/so762-split/test data/so762-streams
"""

from __future__ import annotations

import argparse
from pathlib import Path

from data_prep.words import DEFAULT_WORDS, load_words_file

LARGE = Path(__file__).resolve().parent / "words" / "large.txt"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("test", type=Path, help="the held-out speakers' folder of fusion_split.py")
    p.add_argument("dest", type=Path)
    p.add_argument("--min-letters", type=int, default=4)
    p.add_argument("--min-speakers", type=int, default=15)
    a = p.parse_args()
    trained = set(DEFAULT_WORDS) | set(load_words_file(LARGE, exclude=frozenset()))
    kept = 0
    for folder in sorted(d for d in a.test.iterdir() if d.is_dir()):
        word, clips = folder.name, sorted(folder.glob("*.flac"))
        speakers = {c.stem.split("_")[-2] for c in clips}
        if sum(ch.isalpha() for ch in word) < a.min_letters or word in trained \
                or len(speakers) < a.min_speakers:
            continue
        (a.dest / word).mkdir(parents=True, exist_ok=True)
        for c in clips:
            link = a.dest / word / c.name
            link.unlink(missing_ok=True)
            link.symlink_to(c.resolve())
        kept += 1
    print(f"{kept} words linked into {a.dest}")


if __name__ == "__main__":
    main()
