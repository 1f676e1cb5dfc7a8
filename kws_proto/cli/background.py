"""Embed keyword-free audio as a background for `kws-proto enroll --fa-per-hour R`.

The files (long recordings of other speech or noise, or folders of clips; each file contributes
its windows and its duration) are cut by the detector's own sliding window (1 s every --hop s)
and embedded by the encoder; the .npz written holds the windows' embeddings, starts and levels,
the audio's length in hours, what it was, the encoder's fingerprint and a checksum
(kws_proto/spot/background.py).  `enroll --fa-per-hour R --background FILE` then sets the
keyword's threshold so that it would fire at most R times an hour on that audio.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kws_proto.spot.detect import MIN_HITS
from kws_proto.spot.windows import HOP
from kws_proto.util.cli import positive_float

HELP = "embed keyword-free audio as a background for enroll --fa-per-hour"


def add_arguments(p) -> None:
    p.add_argument("model", help="the encoder: a run directory, `default`, `gse` or a fused "
                                 "model's folder (the bank's encoder)")
    p.add_argument("audio", nargs="+", metavar="FILE", help="audio files or folders of them "
                                                            "that do not hold the keywords")
    p.add_argument("--out", type=Path, required=True, help="the background file to write (.npz)")
    p.add_argument("--hop", type=positive_float, default=HOP,
                   help="seconds between window starts (the detector's)")
    p.add_argument("--skip-unreadable", action="store_true",
                   help="leave out files that cannot be read (the background's source says how "
                        "many) instead of stopping")
    p.add_argument("--join", action="store_true",
                   help="the files back to back as one recording (for short clips: one shorter "
                        "than 1.2 s makes no event on its own)")


def run(args) -> int:
    from kws_proto.spot.background import save_background  # lazy: --help builds every parser
    from kws_proto.spot.spotter import KeywordSpotter  # lazy: --help builds every parser

    spotter = KeywordSpotter.from_model(args.model)
    bg = spotter.background(args.audio, hop=args.hop, join=args.join,
                            skip_unreadable=args.skip_unreadable)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_background(bg, args.out)
    files = int(bg.segments.max()) + 1
    short = int(np.sum(np.bincount(bg.segments) < MIN_HITS))
    print(f"wrote {args.out}: {len(bg)} windows of {bg.hours * 60:.4g} min of audio "
          f"({bg.hop:g} s hop) in {files} recording(s) from {bg.source}")
    if short:
        print(f"note: {short} of them hold fewer than {MIN_HITS} windows and can make no event "
              "on their own; --join puts the files back to back")
    return 0
