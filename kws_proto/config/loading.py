"""Experiment YAML files in and out: ``extends`` chains, overrides, and the run's ``config.yaml``.

A config may start from another: ``extends: base.yaml`` (a path relative to the extending file;
the base may extend another in turn) loads the base first and deep-merges the extending file's
mapping over it (mappings key by key, every other value replaced); ``name`` is never inherited,
it defaults to the extending file's stem.  Command-line overrides ``--set train.seed=1``
(:func:`~kws_proto.config.overrides.parse_overrides`) are merged last.  A config must name its
dataset (``data.dataset``): an empty file is a :class:`ConfigError`, a config naming none
trains on the default corpus with a warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path

import yaml

from kws_proto.config.overrides import parse_overrides
from kws_proto.config.paths import resolve_paths
from kws_proto.config.schema import DataConfig, ExperimentConfig
from kws_proto.errors import ConfigError


def load_config(path: str | Path, overrides: dict | None = None,
                sets: Iterable[str] = ()) -> ExperimentConfig:
    """Read an experiment YAML (plus optional ``overrides`` and ``sets``) into an ExperimentConfig.

    ``extends: other.yaml`` in the file (relative to the file) loads ``other.yaml`` first and
    deep-merges this file over it (:func:`read_config_mapping`).  ``overrides`` is a nested
    mapping ``{section: {key: value}}`` updating each section's keys (one level deep);
    ``sets`` are ``KEY.PATH=VALUE`` strings (``kws-proto train --set``, :func:`parse_overrides`)
    deep-merged last.  A relative ``data.dataset`` (and ``data.synth_words_file``) is made
    absolute against the current directory.

    Raises
    ------
    ConfigError
        Missing, empty, non-mapping or invalid YAML (naming the file), a missing base or an
        ``extends`` cycle (naming the files), an unknown key or a bad value (naming the key).

    Warns
    -----
    UserWarning
        When the resolved config names no ``data.dataset``: it trains on the default corpus.
    """
    path = Path(path)
    raw = read_config_mapping(path)
    for section, values in (overrides or {}).items():
        raw.setdefault(section, {}).update(values)
    raw = _deep_merge(raw, parse_overrides(sets))
    raw.setdefault("name", path.stem)
    cfg = ExperimentConfig.from_dict(raw)
    if "dataset" not in raw.get("data", {}):  # a valid config: data is a mapping if present
        warnings.warn(f"{path}: names no data.dataset, so it uses the default dataset "
                      f"{DataConfig.dataset} (say data: {{dataset: ...}} to silence this)",
                      UserWarning, stacklevel=2)
    return resolve_paths(cfg)


def read_config_mapping(path: str | Path, _chain: tuple[Path, ...] = ()) -> dict:
    """The mapping of config file ``path`` with its ``extends`` chain merged in, before typing.

    The base named by ``extends`` (relative to ``path``'s folder) is read first, without its
    ``name``, and ``path``'s own mapping is deep-merged over it (:func:`_deep_merge`); the result
    holds no ``extends`` key.
    """
    path = Path(path)
    raw = _read_mapping(path)
    chain = (*_chain, path.resolve())
    if "extends" not in raw:
        return raw
    base = raw.pop("extends")
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{path}: extends={base!r} must be the path of another config file")
    base_path = path.parent / base
    if base_path.resolve() in chain:
        files = " -> ".join(str(p) for p in (*chain, base_path.resolve()))
        raise ConfigError(f"{path}: extends cycle: {files}")
    if not base_path.is_file():
        raise ConfigError(f"{path}: extends {base!r}, but there is no such config file "
                          f"{base_path}")
    merged = read_config_mapping(base_path, chain)
    merged.pop("name", None)  # a run is named after its own config
    return _deep_merge(merged, raw)


def _read_mapping(path: Path) -> dict:
    """The YAML mapping of one config file, as written (``extends`` not followed)."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from e
    if raw is None:
        raise ConfigError(f"{path}: empty config file; a config names at least its dataset, "
                          "e.g. data: {dataset: data/synth}")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections (data, model, train, "
                          f"...), got {type(raw).__name__} {raw!r:.60}")
    return raw


def _deep_merge(base: dict, over: dict) -> dict:
    """``base`` with ``over`` merged in: mappings in both merge key by key, ``over`` wins else."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def dump_config(cfg: ExperimentConfig) -> str:
    """The config as YAML text (the form written to ``run_dir/config.yaml``)."""
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
