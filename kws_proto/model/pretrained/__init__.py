"""The models shipped inside the package, and how commands name a model.

Commands that take a model (``eval``, ``enroll``, ``detect``, ``spot-eval``, ``fuse``) take a run
directory written by ``kws-proto train``, a fused model's folder (``kws-proto fuse``), or the
name of a model shipped here, one folder each beside this file:

``default``
    What the package uses unless told otherwise: the shipped trained encoder (below), the frozen
    Google speech embedding (``gse``) and the head trained on its windows (``gse-head``, below),
    fused: each member centred on its mean over 1,000 speechocean762 word clips and scaled to
    unit length (:mod:`kws_proto.model.fusion`). Its folder holds ``fusion.json``,
    ``record.json`` (the command, centre corpus, commit and machine that made it) and
    ``background.npz`` (the cohort of its default enrolment).
``protores_synth``
    The trained member: three ProtoRes encoders trained on synthesised words, in a run
    directory's layout (``config.yaml``, ``best.weights.h5``) plus ``record.json``, the record of
    how it was made (command, seed, data, machine, time) and the fingerprint of its weights.
    ``make pretrained`` rebuilds it from ``experiments/configs/pretrained.yaml`` and fuses
    ``default`` again.
``gse_head``
    Not a model on its own but a file the ``gse-head`` embedding reads: ``gse_head.npz``, three small
    networks trained on the Google speech embedding's three window outputs of synthesised words
    (:mod:`kws_proto.model.gse_head`), and its ``record.json``; ``make pretrained`` trains it from
    ``experiments/configs/gse_head/gse_head.yaml``.

A shipped name means the shipped model only when no folder of that name is in the way.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from kws_proto.errors import CheckpointError
from kws_proto.util.provenance import file_sha256

MODELS_DIR = Path(__file__).resolve().parent  # each shipped model is a folder beside this file
DEFAULT = "default"  # the fused model the package uses unless told otherwise
TRAINED = "protores_synth"  # the shipped trained encoder, default's trained member
SHIPPED = (DEFAULT, TRAINED)
FUSION_FILE = "fusion.json"  # a fused model's folder (kws_proto.model.fusion.FILE)


def _complete(path: Path) -> bool:
    """Whether ``path`` holds a run (config and weights) or a fused model."""
    return ((path / "config.yaml").is_file() and (path / "best.weights.h5").is_file()) \
        or (path / FUSION_FILE).is_file()


def model_dir(name: str = DEFAULT) -> Path:
    """The folder of the shipped model ``name``: a run directory (``protores_synth``) or a fused
    model's folder (``default``).

    Raises
    ------
    CheckpointError
        If the package ships no model of that name.
    """
    path = MODELS_DIR / name
    if name not in SHIPPED or not _complete(path):
        shipped = sorted(p.name for p in MODELS_DIR.iterdir() if p.is_dir() and _complete(p)) \
            if MODELS_DIR.is_dir() else []
        raise CheckpointError(
            f"no shipped model {name!r} in {MODELS_DIR} (shipped: {', '.join(shipped) or 'none'}); "
            "`make pretrained` builds them"
        )
    return path


def resolve_model(spec: str | os.PathLike) -> Path:
    """The folder of ``spec``: a shipped model's name (:data:`SHIPPED`) gives its folder here,
    anything else is a path (returned as given, checked by whoever loads it)."""
    if is_shipped(spec):
        return model_dir(str(spec))
    return Path(spec)


def is_shipped(spec: str | os.PathLike) -> bool:
    """Whether ``spec`` names a shipped model (``"default"``, ``"protores_synth"``), not a folder
    of that name."""
    return str(spec) in SHIPPED and not Path(spec).exists()


def weights_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a weights file, hex."""
    return file_sha256(path)


def read_record(name: str = TRAINED) -> dict:
    """A shipped model's ``record.json`` (how it was made, and its fingerprints)."""
    path = model_dir(name) / "record.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: unreadable record ({e})") from e
