"""The pretrained encoder shipped inside the package, and how commands name a model.

Commands that need a trained encoder (``eval``, ``enroll``, ``export``) take either a run
directory written by ``kws-proto train`` or the word ``default``: the pretrained encoder in
``kws_proto/model/pretrained/default/``, which has a run directory's layout (``config.yaml``,
``best.weights.h5``) plus ``record.json``, the record of how it was made (command, seed, data,
machine, time) and the fingerprint of its weights. ``make pretrained`` rebuilds it from
``experiments/configs/pretrained.yaml``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from kws_proto.errors import CheckpointError
from kws_proto.util.provenance import file_sha256

MODELS_DIR = Path(__file__).resolve().parent  # each shipped model is a folder beside this file
DEFAULT = "default"


def model_dir(name: str = DEFAULT) -> Path:
    """The folder of the shipped model ``name`` (a run-directory layout).

    Raises
    ------
    CheckpointError
        If the package ships no model of that name.
    """
    path = MODELS_DIR / name
    if not (path / "config.yaml").is_file() or not (path / "best.weights.h5").is_file():
        shipped = sorted(p.name for p in MODELS_DIR.iterdir() if p.is_dir()) if MODELS_DIR.is_dir() else []
        raise CheckpointError(
            f"no shipped model {name!r} in {MODELS_DIR} (shipped: {', '.join(shipped) or 'none'}); "
            "`make pretrained` builds the default one"
        )
    return path


def resolve_model(spec: str | os.PathLike) -> Path:
    """A run directory for ``spec``: ``"default"`` is the shipped pretrained encoder, anything
    else a path to a run directory (returned as given, checked by whoever loads it)."""
    if is_shipped(spec):
        return model_dir(DEFAULT)
    return Path(spec)


def is_shipped(spec: str | os.PathLike) -> bool:
    """Whether ``spec`` names a shipped model (``"default"``, not a folder of that name)."""
    return str(spec) == DEFAULT and not Path(spec).exists()


def weights_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a weights file, hex."""
    return file_sha256(path)


def read_record(name: str = DEFAULT) -> dict:
    """The shipped model's ``record.json`` (how it was made, and its fingerprints)."""
    path = model_dir(name) / "record.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: unreadable record ({e})") from e
