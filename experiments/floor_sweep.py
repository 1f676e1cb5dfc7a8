"""How the spectrogram's floor at test time moves a trained encoder on real speech.

FSDD's clips are short and band-limited, so most of their spectrogram is digital silence at the
``top_db`` floor (experiments/floor.md).  This scores a run
directory, unchanged but for one field of its front end (``top_db``, ``amin`` or
``dither_db``), on the cross-corpus cells of ``kws-proto eval`` (FSDD digits speaker-disjoint,
Picovoice wake words; 5-way 1- and 5-shot, the same 1,000 episodes of seed 0), and on FSDD
scaled by a gain (20 dB quieter, 10 dB louder) to show which floors depend on the level.

    python experiments/floor_sweep.py RUN_DIR [VARIANT ...]

RUN_DIR is a run directory or ``default``; VARIANTs are names of :data:`VARIANTS` (all when none
are given).  The front end of ``RUN_DIR`` is the baseline: for the shipped encoder, which has
``dither_db: 50``, the "as trained" variant is ``dither_db=None``.  The test sets are read from
``data/fsdd`` and ``data/picovoice``, prepared from ``../shared/data`` (or ``$KWS_SHARED_DATA``)
when missing; the scaled FSDD copies are written to a temporary folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: name -> (front-end fields changed, FSDD gain in dB or None for both test sets unscaled)
VARIANTS = {
    "as run": ({}, None),
    "no dither": ({"dither_db": None}, None),
    **{f"top_db {t}": ({"top_db": float(t), "dither_db": None}, None) for t in (70, 60, 55, 50, 45, 40)},
    **{f"amin {a:g}": ({"amin": a, "dither_db": None}, None) for a in (1e-6, 1e-5, 1e-4)},
    **{f"dither_db {d}": ({"dither_db": float(d)}, None) for d in (55, 50, 45)},
    **{f"{name}, FSDD {g:+d} dB": (fields, g) for g in (-20, 10)
       for name, fields in (("no dither", {"dither_db": None}), ("amin 1e-05", {"amin": 1e-5, "dither_db": None}),
                            ("dither_db 50", {"dither_db": 50.0}))},
}


def _variant_run(run: Path, fields: dict, tmp: Path) -> Path:
    """A copy of ``run`` (weights, head, config) whose front end has ``fields`` changed."""
    from kws_proto.config import dump_config, load_config

    out = Path(tempfile.mkdtemp(dir=tmp))
    for name in ("best.weights.h5", "head.npz", "splits.json"):
        if (run / name).is_file():
            shutil.copy2(run / name, out / name)
    cfg = load_config(run / "config.yaml")
    (out / "config.yaml").write_text(dump_config(replace(cfg, features=replace(cfg.features, **fields))))
    return out


def _scaled_fsdd(src: Path, gain_db: int, tmp: Path) -> Path:
    """FSDD with every file scaled by ``gain_db`` (clipped to [-1, 1]), prepared by ``kws-prep folder``."""
    import numpy as np
    import soundfile as sf

    raw, prepared = tmp / f"fsdd{gain_db:+d}-wav", tmp / f"fsdd{gain_db:+d}"
    if not prepared.is_dir():
        raw.mkdir()
        for f in sorted(src.glob("*.wav")):
            y, sr = sf.read(f, dtype="float32")
            sf.write(raw / f.name, np.clip(y * 10 ** (gain_db / 20), -1, 1), sr, subtype="PCM_16")
        subprocess.run([sys.executable, "-m", "data_prep.cli", "folder", str(raw), str(prepared)],
                       check=True, capture_output=True)
    return prepared


def main(run_dir: str, names: list[str]) -> None:
    from kws_proto.eval.suites import FSDD, PICOVOICE as PICO
    from kws_proto.eval.evaluate import EvalSetting, evaluate_run
    from kws_proto.model.pretrained import resolve_model

    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        sys.exit(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
    run = Path(resolve_model(run_dir))
    fsdd, pico = FSDD.dataset(), PICO.dataset()
    settings = [EvalSetting(5, 1), EvalSetting(5, 5)]
    print(f"{run_dir}: 5-way 1-/5-shot accuracy %, 1,000 episodes of seed 0")
    print("| variant | FSDD 5w1s | FSDD 5w5s | Picovoice 5w1s | Picovoice 5w5s |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="floor_sweep_") as tmp:
        for name in names or list(VARIANTS):
            fields, gain = VARIANTS[name]
            variant = _variant_run(run, fields, Path(tmp))
            cells = []
            sets = [(fsdd if gain is None else _scaled_fsdd(FSDD.source, gain, Path(tmp)), list(FSDD.classes), True)]
            if gain is None:
                sets.append((pico, list(PICO.classes), False))
            for data, classes, disjoint in sets:
                rows = evaluate_run(variant, settings, data, classes, speaker_disjoint=disjoint, progress=False)
                cells += [f"{100 * r['mean']:.1f} ± {100 * r['ci95']:.1f}" for r in rows]
            cells += [""] * (4 - len(cells))
            print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
