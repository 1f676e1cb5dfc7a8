"""Typed experiment configs: frozen dataclasses loaded from YAML and written into every run.

An experiment YAML has one section per dataclass below; every key is optional and unknown keys
are a :class:`ConfigError` naming the key path, so a typo never silently falls back to a default::

    name: protores
    data: {dataset: data/synth, source: synth, synth_words: 150, synth_speakers: 40}
    features: {window_ms: 40, hop_ms: 20, n_mfcc: 40}
    augment: {enabled: true}
    model: {encoder: protores, params: {layout: temporal}}
    episodes: {n_way: 5, k_shot: 5, n_query: 5}
    train: {episodes: 3000, lr: 0.001, seed: 0}
    head: {kind: cl2n}

A config may start from another: ``extends: base.yaml`` (a path relative to the extending file;
the base may extend another in turn) loads the base first and deep-merges the extending file's
mapping over it (mappings key by key, every other value replaced); ``name`` is never inherited,
it defaults to the extending file's stem.  Command-line overrides ``--set train.seed=1`` are
parsed by :func:`parse_overrides` and merged last.  A config must name its dataset
(``data.dataset``): an empty file is a :class:`ConfigError`, a config naming none trains on the
default corpus with a warning.

Relative dataset paths are resolved against the current directory at load time.  The run's
``config.yaml`` holds the fully resolved config (no ``extends``), its data paths inside the
project relative to the run directory (:func:`paths_for_run`, :func:`paths_from_run`).
Variations are ``dataclasses.replace`` of a loaded config.
"""

from __future__ import annotations

import dataclasses
import os
import re
import typing
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from kws_proto.audio.augment import AugmentConfig
from kws_proto.audio.features import FeatureConfig
from kws_proto.errors import ConfigError
from kws_proto.util.typed import from_dict, to_plain

SOURCES = ("prepared", "synth")
HEADS = ("none", "cl2n")
TEACHERS = ("gse",)


@dataclass(frozen=True)
class DataConfig:
    """Which prepared dataset folder to train on, and how to build it when it is missing.

    ``source="synth"`` builds the built-in eSpeak NG corpus into ``dataset`` on first use
    (``synth_words`` words x ``synth_speakers`` voices, ``synth_seed``; the words are a seeded
    pick from ``synth_words_file`` — one word per line — or, when that is empty, from the
    default vocabulary of :mod:`data_prep.words`; ``synth_flite_speakers`` Flite voice settings
    say every word too, which needs the system's ``flite``, :mod:`data_prep.flite`);
    ``"prepared"`` requires a folder made beforehand by ``kws-prep``.
    """

    dataset: str = "data/synth"
    source: str = "synth"
    synth_words: int = 200
    synth_speakers: int = 50
    synth_seed: int = 0
    synth_words_file: str = ""
    synth_flite_speakers: int = 0
    speaker_disjoint: bool = False

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ConfigError(f"data.source={self.source!r} must be one of {SOURCES}")
        _positive(self, "data", "synth_words", "synth_speakers")
        if self.synth_flite_speakers < 0:
            raise ConfigError(f"data.synth_flite_speakers={self.synth_flite_speakers} must be >= 0")


@dataclass(frozen=True)
class ModelConfig:
    """Encoder name from :data:`kws_proto.encoders.ENCODERS`, its parameters, and the metric.

    ``distance`` is the metric of prototypes and queries: ``"euclidean"`` (squared, summed
    over dimensions), the only one since a cosine metric measured no better and was removed
    after commit eb06620 (experiments/training.md); the field stays so that configs name it.

    ``params`` is completed with the encoder's defaults at construction, so a run's
    ``config.yaml`` records every parameter it was built with and a later change of a default
    never silently changes what an old config means (``compare`` retrains instead of reusing).
    Unknown parameter names are a :class:`ConfigError`.
    """

    encoder: str = "protores"
    params: dict = field(default_factory=dict)
    distance: str = "euclidean"

    def __post_init__(self) -> None:
        from kws_proto.encoders import complete_params  # no TensorFlow import

        try:
            full = complete_params(self.encoder, self.params)
        except ConfigError as e:
            raise ConfigError(f"model: {e}") from None
        object.__setattr__(self, "params", {k: list(v) if isinstance(v, tuple) else v
                                            for k, v in full.items()})
        if self.distance != "euclidean":
            raise ConfigError(f"model.distance={self.distance!r}: only 'euclidean' is supported "
                              "(the cosine distance was removed after commit eb06620)")

    @property
    def groups(self) -> int:
        """How many equal member blocks the encoder's embedding has: an ensemble's members, else 1."""
        return int(self.params["members"]) if self.encoder == "ensemble" else 1


@dataclass(frozen=True)
class EpisodeConfig:
    """Training and validation episode shapes (N-way K-shot Q-query).

    ``unknown`` adds to every training episode the reference protocol's extra class of held-out
    words (the dataset split's ``unknown`` pool); ``silence`` adds a class of background noise.
    Validation episodes are always closed-set.
    """

    n_way: int = 5
    k_shot: int = 5
    n_query: int = 5
    val_way: int = 5
    val_shot: int = 5
    val_query: int = 15
    val_episodes: int = 200
    unknown: bool = False
    silence: bool = False

    def __post_init__(self) -> None:
        _positive(self, "episodes", *(f.name for f in dataclasses.fields(self)
                                      if f.name not in ("unknown", "silence")))
        if self.n_way < 2 or self.val_way < 2:
            raise ConfigError("episodes.n_way and episodes.val_way must be at least 2")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation: Adam with step decay, validation cadence, early stopping, seed.

    The learning rate is ``lr * lr_decay ** (episode // lr_decay_every)``.  Validation runs every
    ``val_every`` episodes on the fixed validation episodes; the best weights by validation
    accuracy are kept, and training stops after ``patience`` validations without improvement
    (0 disables early stopping).  ``seed`` fixes the episodes, the initialisation and the
    augmentation.  ``ema`` > 0 keeps an exponential moving average of the trainable weights
    (decay ``ema``, warmed up as ``min(ema, (1 + t) / (10 + t))`` at step ``t``); validation,
    the best weights and everything downstream then use the averaged weights, while the
    optimizer keeps stepping the raw ones (BatchNorm's moving statistics are not averaged
    again).  0 (the default) validates the raw weights.  ``feed_cores`` > 0 keeps that many CPU
    cores free of the training step for the episode feed (per-episode augmentation and MFCC run
    in ``tf.data``): the step gets ``cores - feed_cores`` intra-op threads (at least 1) and one
    inter-op thread (:func:`kws_proto.train.devices.set_feed_cores`); 0 (the default) leaves TensorFlow
    its default pools, every core for the step.  On 2 cores that lets the augmented feed overlap
    a ProtoRes step; conv4, whose step dwarfs the feed, is faster with every core
    (experiments/speed.md, "Feeding the training step").  ``mixed_precision`` trains in
    Keras' ``mixed_float16`` (float16 compute, float32 weights, dynamic loss scaling; the
    distances and the softmax stay float32), ``jit_compile`` compiles the step's forward and
    backward pass with XLA; both are for GPUs and off by default (README, "GPUs").

    ``distill`` > 0 adds a relational distillation term, weighted by ``distill``, to every
    training episode's prototypical loss: the cosine similarities between the episode's clips in
    the encoder's embedding (per ensemble member) are pulled towards those in the frozen
    ``teacher``'s embedding (:mod:`kws_proto.model.distill`).  The only teacher is ``"gse"``, the
    Google speech embedding of every clip's un-augmented crop (:func:`kws_proto.model.gse.crop_table`,
    the optional extra ``gse``), built once into the dataset's cache; silence clips have no
    target and are left out.  ``teacher_centre`` subtracts the teacher table's mean row first,
    so the similarities compared are those of the teacher's deviations from its average clip
    (the speech embedding's raw rows are all alike: cosine about 0.8 between any two clips).
    0 (the default) trains exactly as without the lever: no teacher table, the same feed and
    step.  Single-replica training only.
    """

    episodes: int = 3000
    lr: float = 1e-3
    lr_decay: float = 0.5
    lr_decay_every: int = 1000
    val_every: int = 250
    patience: int = 6
    seed: int = 0
    ema: float = 0.0
    feed_cores: int = 0
    mixed_precision: bool = False
    jit_compile: bool = False
    distill: float = 0.0
    teacher: str = "gse"
    teacher_centre: bool = True

    def __post_init__(self) -> None:
        _positive(self, "train", "episodes", "lr", "lr_decay", "lr_decay_every", "val_every")
        if not 0.0 <= self.distill < float("inf"):  # NaN too
            raise ConfigError(f"train.distill={self.distill!r} must be a finite number >= 0 "
                              "(0 = no distillation)")
        if self.teacher not in TEACHERS:
            raise ConfigError(f"train.teacher={self.teacher!r} must be one of "
                              f"{', '.join(map(repr, TEACHERS))}")
        if self.patience < 0:
            raise ConfigError(f"train.patience={self.patience} must be >= 0")
        if self.feed_cores < 0:
            raise ConfigError(f"train.feed_cores={self.feed_cores} must be >= 0 (0 = TensorFlow's "
                              "default thread pools)")
        if not 0.0 <= self.ema < 1.0:
            raise ConfigError(f"train.ema={self.ema!r} must be in [0, 1) (0 = no weight averaging)")


@dataclass(frozen=True)
class HeadConfig:
    """What is done to the trained encoder's embeddings before they are compared
    (:mod:`kws_proto.model.head`): nothing (``"none"``), or ``"cl2n"``: subtract the mean embedding
    of ``clips`` clips of the run's training words, then scale each ensemble member's block to
    unit length (SimpleShot's CL2N).  The head is fitted once after training, from the best
    weights, and plays no part in training itself, so changing it on a finished run refits the
    head without retraining (:func:`same_training`).  ``none`` is the default because a run
    directory written before heads existed has no ``head`` section, and must keep meaning what
    it meant.
    """

    kind: str = "none"
    clips: int = 3000

    def __post_init__(self) -> None:
        if self.kind not in HEADS:
            raise ConfigError(f"head.kind={self.kind!r} must be one of {', '.join(map(repr, HEADS))}")
        _positive(self, "head", "clips")


@dataclass(frozen=True)
class ExperimentConfig:
    """One training run: every section above plus a name."""

    name: str = "run"
    data: DataConfig = field(default_factory=DataConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    episodes: EpisodeConfig = field(default_factory=EpisodeConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    head: HeadConfig = field(default_factory=HeadConfig)

    def to_dict(self) -> dict:
        return to_plain(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "ExperimentConfig":
        return from_dict(cls, _without_retired(d or {}), "")


#: Keys of levers removed after commit eb06620 (each measured worse on real speech or was unused;
#: experiments/protocol.md lists them): a stored run's config.yaml still names them, at their
#: "off" value, which is accepted and dropped; any other value is a ConfigError naming the lever.
#: ``None``: any value is dropped (a setting that only mattered with the lever on).
RETIRED = {
    ("augment", "speed"): (0.0, "speed perturbation"),
    ("augment", "lowpass_prob"): (0.0, "the low-pass augmentation"),
    ("augment", "lowpass_hz"): (None, "the low-pass augmentation"),
    ("augment", "freq_warp"): (0.0, "frequency warping (VTLP)"),
    ("data", "synth_festival_speakers"): (0, "the Festival synthesiser"),
    ("data", "synth_festival_voices"): (None, "the Festival synthesiser"),
}


def _without_retired(d):
    """``d`` without the :data:`RETIRED` keys at their off values (others: ConfigError)."""
    if not isinstance(d, dict):
        return d
    out = dict(d)
    for (section, key), (off, lever) in RETIRED.items():
        values = out.get(section)
        if not isinstance(values, dict) or key not in values:
            continue
        if off is not None and values[key] != off and values[key] not in ([], None):
            raise ConfigError(f"{section}.{key}={values[key]!r}: {lever} was removed after commit "
                              "eb06620 (see experiments/protocol.md); drop the key")
        out[section] = {k: v for k, v in values.items() if k != key}
    return out


def same_training(a: ExperimentConfig, b: ExperimentConfig) -> bool:
    """Whether ``a`` and ``b`` train the same encoder: equal in everything but the head."""
    return dataclasses.replace(a, head=b.head) == b


def _positive(obj, section: str, *names: str) -> None:
    for n in names:
        v = getattr(obj, n)
        if not v > 0:
            raise ConfigError(f"{section}.{n}={v!r} must be positive")


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


def _deep_merge(base: dict, over: dict) -> dict:
    """``base`` with ``over`` merged in: mappings in both merge key by key, ``over`` wins else."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


# YAML 1.1 (PyYAML) reads 1e-3 as a string; on the command line it means a number.
_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def parse_overrides(items: Iterable[str]) -> dict:
    """``["train.seed=1", "model.params.members=3"]`` as the nested mapping
    ``{"train": {"seed": 1}, "model": {"params": {"members": 3}}}``.

    Each value is read as YAML (``2``, ``0.5``, ``1e-3``, ``true``, ``[a, b]``, ``{k: v}``; text
    stays text); a later item for the same key wins.  Key paths are checked against the config's
    sections and fields (below ``model.params``, the encoder checks its parameters when the
    config is built).

    Raises
    ------
    ConfigError
        An item without ``=`` or with an empty key part (naming ``--set`` and the item), a value
        that is not YAML, or a key path that does not exist (naming it).
    """
    out: dict = {}
    for item in items:
        key, eq, text = str(item).partition("=")
        parts = key.strip().split(".")
        if not eq or not all(parts):
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE with a dotted key, "
                              "e.g. --set train.seed=1")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML ({e})") from None
        if isinstance(value, str) and _EXPONENT.fullmatch(value.strip()):
            value = float(value)
        _check_key_path(parts, item)
        node = out
        for p in parts[:-1]:
            if not isinstance(node.get(p), dict):
                node[p] = {}
            node = node[p]
        node[parts[-1]] = value
    return out


def _check_key_path(parts: list[str], item: str) -> None:
    """Raise a ConfigError naming the key unless ``parts`` is a path of ExperimentConfig fields
    (free-form below a ``dict`` field such as ``model.params``)."""
    tp = ExperimentConfig
    for i, part in enumerate(parts):
        where = ".".join(parts[:i + 1])
        if not dataclasses.is_dataclass(tp):
            if tp is dict:
                return
            raise ConfigError(f"--set {item!r}: {'.'.join(parts[:i])} is a value, not a section, "
                              f"so {where!r} does not exist")
        names = [f.name for f in dataclasses.fields(tp)]
        if part not in names:
            raise ConfigError(f"--set {item!r}: unknown config key {where!r}; known: {names}")
        tp = typing.get_type_hints(tp)[part]


def resolve_paths(cfg: ExperimentConfig) -> ExperimentConfig:
    return _map_data_paths(cfg, lambda p: str(Path(p).expanduser().resolve()))


def _map_data_paths(cfg: ExperimentConfig, fn) -> ExperimentConfig:
    """``cfg`` with ``fn`` applied to each non-empty data path (dataset, synth_words_file)."""
    data = cfg.data
    return dataclasses.replace(cfg, data=dataclasses.replace(
        data, dataset=fn(data.dataset) if data.dataset else data.dataset,
        synth_words_file=fn(data.synth_words_file) if data.synth_words_file else ""))


def _run_relative(p: str) -> bool:
    return p in (".", "..") or p.startswith(("./", "../"))


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
    resolved against ``run_root``.  An absolute path (older runs) is kept; so is a path relative
    to the project root (the shipped model's ``data/...``), which stays relative to the current
    directory as it always was."""
    def resolve(p: str) -> str:
        return str((Path(run_root) / p).resolve()) if _run_relative(p) else p

    return _map_data_paths(cfg, resolve)


def dump_config(cfg: ExperimentConfig) -> str:
    """The config as YAML text (the form written to ``run_dir/config.yaml``)."""
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
