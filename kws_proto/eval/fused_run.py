"""A trained run fused post-hoc with frozen embeddings, centred on its dataset's training words.

:func:`ensure_fused` writes the folder ``kws-proto fuse RUN gse --out OUT`` would write
(:mod:`kws_proto.model.fusion`: each member centred on its mean embedding, scaled to unit length,
weighed), except where the centre clips come from: ``clips`` clips drawn by ``seed`` from the clips
of the *training* words of a prepared dataset (:func:`split_files`), speech the run has already
heard and that none of the test sets scored here uses, where ``--centre-data`` takes every audio
file of a folder.  ``centre_data`` in ``fusion.json`` records the dataset, the split, the seed and
the SHA-256 of the list of clips.

The folder is reused while every member's weights fingerprint and the clips drawn are the ones it
was fitted with, as a finished run of the same config is reused; otherwise (the run was trained
again, the corpus rebuilt) it is fitted again.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from kws_proto.data.dataset import SPLIT_NAMES, load_manifest, load_splits
from kws_proto.errors import ConfigError, DatasetError
from kws_proto.model.fusion import Fusion, is_fusion, load_fusion, save_fusion
from kws_proto.spot.fusion import CLIPS, fit_members, member_embedder, member_name

SPLIT = "train"  # the split whose words the centres are taken from


def split_files(root: str | os.PathLike, split: str = SPLIT, clips: int = CLIPS,
                seed: int = 0) -> list[Path]:
    """Clips of the words of ``split`` in the prepared dataset ``root``.

    ``clips`` of them drawn without replacement by ``seed`` from the manifest's rows of those
    words (all when there are fewer), in manifest order; paths are absolute.
    """
    if split not in SPLIT_NAMES:
        raise ConfigError(f"split={split!r} must be one of {', '.join(SPLIT_NAMES)}")
    manifest, words = load_manifest(root), set(getattr(load_splits(root), split))
    rows = [i for i, c in enumerate(manifest.clips) if c.keyword in words]
    if not rows:
        raise DatasetError(f"{root}: no clips of {split} words to take centres from")
    if clips < len(rows):
        pick = np.random.default_rng(seed).choice(len(rows), size=clips, replace=False)
        rows = [rows[i] for i in sorted(pick)]
    return [manifest.root / manifest.clips[i].path for i in rows]


def centre_record(root: str | os.PathLike, files, split: str = SPLIT, seed: int = 0) -> dict:
    """``centre_data`` of a fusion whose centres are the mean embeddings of ``files`` of ``root``."""
    root = Path(root).resolve()
    listing = "\n".join(Path(f).resolve().relative_to(root).as_posix() for f in files)
    return {"path": str(root), "split": split, "clips": len(files), "seed": int(seed),
            "files_sha256": hashlib.sha256(listing.encode()).hexdigest()}


def ensure_fused(run_dir: str | os.PathLike, out: str | os.PathLike, data_root: str | os.PathLike,
                 frozen=("gse",), clips: int = CLIPS, seed: int = 0, backend: str | None = None,
                 progress: bool = True) -> Fusion:
    """The fusion of ``run_dir`` with the ``frozen`` embeddings in folder ``out``, weights all 1.

    Reused when ``out`` holds one of the same members with the same weights fingerprints and
    centre clips; else fitted on ``clips`` clips of the training words of ``data_root``
    (:func:`split_files`) and written there.
    """
    models = [str(run_dir), *frozen]
    embedders = [member_embedder(m, backend) for m in models]
    files = split_files(data_root, SPLIT, clips, seed)
    wanted = centre_record(data_root, files, SPLIT, seed)
    stale = _stale(out, models, embedders, wanted)
    if not stale:
        print(f"reusing the fused model {out}", flush=True)
        return load_fusion(out)
    if stale != "absent":
        print(f"fitting {out} again: {stale}", flush=True)
    members, used = fit_members(models, files, None, backend, progress)
    fusion = Fusion(members, centre_record(data_root, used, SPLIT, seed))
    save_fusion(fusion, out)
    print(f"fused {' + '.join(Path(m).name for m in models)} into {out} (centres: {len(used)} "
          f"clips of the {SPLIT} words of {data_root}, seed {seed})", flush=True)
    return fusion


def _stale(out, models, embedders, wanted: dict) -> str:
    """Why the fusion in ``out`` cannot be reused ("absent", ...), or "" when it can."""
    if not is_fusion(out):
        return "absent"
    old = load_fusion(out)
    if [m.model for m in old.members] != [member_name(m) for m in models]:
        return "its members are " + ", ".join(m.model for m in old.members)
    changed = [m.model for m, e in zip(old.members, embedders) if m.fingerprint != e.fingerprint]
    if changed:
        return f"the weights of {', '.join(changed)} changed since"
    if any(m.weight != 1.0 for m in old.members):
        return "its weights are not all 1"
    if old.centre_data != wanted:
        return "its centre clips are other clips"
    return ""
