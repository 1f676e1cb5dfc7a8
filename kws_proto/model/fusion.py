"""Post-hoc fusion of embedding models: the math and the folder that records a fused model.

A fused model combines members — a trained run (a run directory or ``default``) and the frozen
Google speech embedding (``gse``, :mod:`kws_proto.model.gse`) — without training anything.  Each
member's embedding ``e_i`` of a clip is centred on that member's mean embedding ``c_i`` over a
corpus given at fusion time, scaled to unit length, and weighed by ``sqrt(w_i)``; the fused
embedding is their concatenation::

    f(x) = [sqrt(w_1) * unit(e_1(x) - c_1), ..., sqrt(w_m) * unit(e_m(x) - c_m)]

so the squared Euclidean distance the package compares embeddings with is the weighted sum of the
members' squared distances of their centred-unit embeddings, ``sum_i w_i * d_i``: each member
counts by its weight, whatever the scale or size of its own embedding.  Centring on a mean and
scaling to unit length is "CL2N" of Wang et al. 2019 ("SimpleShot", arXiv 1911.04623), applied per
member.

The folder holds one file, ``fusion.json`` (written atomically)::

    {"format": "kws_proto.fusion", "version": 1,
     "members": [{"model": "default" | "gse" | "/abs/run/dir", "fingerprint": "<hex>",
                  "dim": d_i, "weight": w_i, "centre": [c_i ...]}, ...],
     "centre_data": {"path": "/abs/corpus", "clips": n, "seed": s, "files_sha256": "<hex>"}}

``fingerprint`` is each member's weights fingerprint when the centres were taken; the fused
model's own fingerprint (:attr:`Fusion.fingerprint`, what banks record) hashes every member's
fingerprint, weight and centre, so a bank enrolled with another fusion is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kws_proto.errors import CheckpointError, ConfigError
from kws_proto.model.pretrained import FUSION_FILE, resolve_model
from kws_proto.util.atomic import atomic_write_text

FORMAT = "kws_proto.fusion"
VERSION = 1
FILE = FUSION_FILE
EPS = 1e-12  # floor of a norm before division (a clip that embeds exactly at the centre)


def centred_unit(embeddings: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """``embeddings [n, d]`` minus ``centre [d]``, each row scaled to unit length: ``[n, d]``."""
    x = np.asarray(embeddings, np.float32) - np.asarray(centre, np.float32)  # [n, d]
    norm = np.linalg.norm(x, axis=-1, keepdims=True)  # [n, 1]
    return (x / np.maximum(norm, EPS)).astype(np.float32, copy=False)


@dataclass(frozen=True)
class Member:
    """One member of a fused model: what embeds (``model``), its weights fingerprint when the
    centre was taken, its weight ``w >= 0`` and centre ``[d]``."""

    model: str
    fingerprint: str
    weight: float
    centre: np.ndarray

    @property
    def dim(self) -> int:
        return int(np.asarray(self.centre).shape[-1])

    def to_dict(self) -> dict:
        return {"model": self.model, "fingerprint": self.fingerprint, "dim": self.dim,
                "weight": float(self.weight),
                "centre": [float(v) for v in np.asarray(self.centre, np.float32)]}


@dataclass(frozen=True)
class Fusion:
    """A fused model: its members and where their centres came from (``centre_data``)."""

    members: tuple[Member, ...]
    centre_data: dict = field(default_factory=dict)

    def __post_init__(self):
        weights = [m.weight for m in self.members]
        if len(self.members) < 2:
            raise ConfigError(f"a fused model needs at least two members, got {len(self.members)}")
        if not all(np.isfinite(w) and w >= 0 for w in weights) or not any(w > 0 for w in weights):
            raise ConfigError(f"fusion weights {weights} must be finite, >= 0, and not all 0")

    @property
    def dim(self) -> int:
        """Size of the fused embedding: the sum of the members' sizes."""
        return sum(m.dim for m in self.members)

    @property
    def fingerprint(self) -> str:
        """Hex SHA-256 over every member's fingerprint, weight and centre (float32 bytes)."""
        h = hashlib.sha256(f"{FORMAT}/{VERSION}".encode())
        for m in self.members:
            h.update(f";{m.fingerprint};{float(m.weight)!r};{m.dim};".encode())
            h.update(np.ascontiguousarray(m.centre, np.float32).tobytes())
        return h.hexdigest()

    def fuse(self, parts) -> np.ndarray:
        """The fused embedding of the members' embeddings ``parts`` (one ``[n, d_i]`` each, in
        member order): ``[n, sum d_i]``, blocks ``sqrt(w_i) * unit(e_i - c_i)``."""
        parts = list(parts)
        if len(parts) != len(self.members):
            raise ValueError(f"{len(parts)} member embeddings for {len(self.members)} members")
        blocks = []
        for m, e in zip(self.members, parts):
            if np.shape(e)[-1] != m.dim:
                raise ValueError(f"member {m.model}: embeddings of size {np.shape(e)[-1]}, centre {m.dim}")
            blocks.append(np.float32(np.sqrt(m.weight)) * centred_unit(e, m.centre))
        return np.concatenate(blocks, axis=-1)

    def to_dict(self) -> dict:
        return {"format": FORMAT, "version": VERSION,
                "members": [m.to_dict() for m in self.members], "centre_data": self.centre_data}


def is_fusion(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a fused model's folder (holds ``fusion.json``) or names a shipped
    fused model (``default``)."""
    try:
        return (resolve_model(path) / FILE).is_file()
    except CheckpointError:  # a shipped name whose folder is missing
        return False


def save_fusion(fusion: Fusion, out: str | os.PathLike) -> Path:
    """Write ``fusion`` to ``out/fusion.json`` atomically (``out`` created); returns that file."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / FILE, json.dumps(fusion.to_dict(), indent=1) + "\n")
    return out / FILE


def load_fusion(path: str | os.PathLike) -> Fusion:
    """Read the fused model of folder ``path`` (or of a shipped name); :class:`CheckpointError`
    names what is wrong."""
    file = resolve_model(path) / FILE
    try:
        d = json.loads(file.read_text("utf-8"))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{file}: not a readable fused model ({e})") from e
    if not isinstance(d, dict) or d.get("format") != FORMAT or d.get("version") != VERSION:
        raise CheckpointError(f"{file}: not a {FORMAT} file of version {VERSION}")
    try:
        members = tuple(Member(str(m["model"]), str(m["fingerprint"]), float(m["weight"]),
                               np.asarray(m["centre"], np.float32)) for m in d["members"])
        bad = [m.model for m, raw in zip(members, d["members"]) if m.dim != int(raw["dim"])]
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{file}: malformed member ({e!r})") from e
    if bad:
        raise CheckpointError(f"{file}: centres of {bad} do not have their recorded size")
    return Fusion(members, dict(d.get("centre_data") or {}))
