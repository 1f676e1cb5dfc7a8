"""A config's data paths: absolute at load time, relative to the run directory in a stored run.

A loaded config holds absolute data paths (:func:`resolve_paths`).  A run's ``config.yaml``
stores a data path inside the project relative to the run directory (:func:`paths_for_run`),
so a copied or moved checkout keeps its runs; :func:`paths_from_run` reads it back.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

from kws_proto.config.schema import ExperimentConfig


def resolve_paths(cfg: ExperimentConfig) -> ExperimentConfig:
    """``cfg`` with each data path (dataset, synth_words_file) absolute against the current directory."""
    return _map_data_paths(cfg, lambda p: str(Path(p).expanduser().resolve()))


def paths_for_run(cfg: ExperimentConfig, run_root: str | Path) -> ExperimentConfig:
    """``cfg`` as a run's ``config.yaml`` stores it: a data path inside the project (the current
    directory, which holds the run too) relative to the run directory, ``../../data/synth``
    (always starting with ``./`` or ``../``), so a copied or moved checkout keeps its runs; any
    other path as it is.  :func:`paths_from_run` reads it back."""
    project, root = Path.cwd().resolve(), Path(run_root).resolve()

    def rel(p: str) -> str:
        if not (Path(p).is_absolute() and Path(p).is_relative_to(project)
                and root.is_relative_to(project)):
            return p
        r = Path(os.path.relpath(p, root)).as_posix()
        return r if _run_relative(r) else f"./{r}"

    return _map_data_paths(cfg, rel)


def paths_from_run(cfg: ExperimentConfig, run_root: str | Path) -> ExperimentConfig:
    """The config of a run's ``config.yaml`` with its run-relative paths (``./``, ``../``)
    resolved against ``run_root``.  An absolute path is kept; so is a path relative to the
    project root (the shipped model's ``data/...``), which stays relative to the current
    directory."""
    def resolve(p: str) -> str:
        return str((Path(run_root) / p).resolve()) if _run_relative(p) else p

    return _map_data_paths(cfg, resolve)


def _map_data_paths(cfg: ExperimentConfig, fn: Callable[[str], str]) -> ExperimentConfig:
    """``cfg`` with ``fn`` applied to each non-empty data path (dataset, synth_words_file)."""
    data = cfg.data
    return dataclasses.replace(cfg, data=dataclasses.replace(
        data, dataset=fn(data.dataset) if data.dataset else data.dataset,
        synth_words_file=fn(data.synth_words_file) if data.synth_words_file else ""))


def _run_relative(p: str) -> bool:
    return p in (".", "..") or p.startswith(("./", "../"))
