"""The shipped background of `default` with a telephone-band copy of its clips beside them
(experiments/spotting.md, "A cohort that also hears telephone-band speech: not kept").

The same clips as the shipped background (every third clip of the centre half, sorted:
``kws_proto.publish.ship_background``), each also resampled to RATE Hz (8,000: the telephone
band, as FSDD is recorded) and written to TMP as WAV; the spotter reads those back at 16 kHz, so
their windows hold no speech above RATE / 2.  Both sets joined into one recording, embedded by
`default`, stored as float16 with the s-norm level `default` shipped with when it was measured
(-3.25; the shipped rule is now another: spotting.md, "The cohort's mean as the unit").

    python experiments/phone_band_background.py data/so762-split/centre runs/bg-phone-band.npz --tmp runs/phone-band
then, as a spot-eval variant: default@norm=snorm,bg=runs/bg-phone-band.npz,context=3,twin=1
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import soundfile as sf
import soxr

from kws_proto.spot.background import build_background, load_background, save_background
from kws_proto.spot.cohort import SNORM
from kws_proto.spot.spotter import KeywordSpotter, audio_files

#: The shipped background's clips are 1 in 3 of the centre corpus (its record.json's source;
#: ``make pretrained``: ``kws_proto.publish.COHORT_EVERY``)
COHORT_EVERY = 3
SNORM_LEVEL = -3.25  # the s-norm level `default` shipped with when this cohort was measured


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("centre", type=Path, help="the centre corpus of `default` (fusion_split.py)")
    p.add_argument("out", type=Path, help="the background file to write (.npz)")
    p.add_argument("--tmp", type=Path, required=True, help="folder for the resampled copies")
    p.add_argument("--rate", type=int, default=8000, help="the copies' sample rate (Hz)")
    a = p.parse_args()
    files = audio_files([a.centre])[::COHORT_EVERY]
    a.tmp.mkdir(parents=True, exist_ok=True)
    copies = []
    for i, f in enumerate(files):
        x, sr = sf.read(f, dtype="float32")
        copies.append(a.tmp / f"{i:05d}.wav")
        sf.write(copies[-1], soxr.resample(x, sr, a.rate), a.rate)
    source = f"{a.centre}: 1 in {COHORT_EVERY} of its clips, and the same at {a.rate} Hz"
    spotter = KeywordSpotter.from_model("default")
    bg = build_background(spotter, [*files, *copies], source=source, join=True)
    bg = dataclasses.replace(bg, cohort_level=SNORM_LEVEL, cohort_norm=SNORM)
    bg = load_background(save_background(bg, a.out, half=True))
    print(f"{a.out}: {len(bg)} windows, {bg.hours:.2f} h")


if __name__ == "__main__":
    main()
