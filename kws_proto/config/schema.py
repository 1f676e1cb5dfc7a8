"""The config schema: one frozen dataclass per section of an experiment YAML.

Every key is optional (each field has its default); :meth:`ExperimentConfig.from_dict` builds a
config from a plain mapping, checking every key and value (:func:`kws_proto.util.typed.from_dict`)
after dropping retired keys (:mod:`kws_proto.config.retired`).  Each ``__post_init__`` checks
its section's values and raises a :class:`ConfigError` naming ``section.key=value``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from kws_proto.audio.augment import AugmentConfig
from kws_proto.audio.features import FeatureConfig
from kws_proto.config.retired import without_retired
from kws_proto.encoders import complete_params
from kws_proto.errors import ConfigError
from kws_proto.util.typed import from_dict, to_plain

SOURCES = ("prepared", "synth")
HEADS = ("none", "cl2n")
FROZEN = ("gse",)  # frozen embeddings a run can train beside (kws_proto.model.frozen)


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
    over dimensions) is the only one (a scaled cosine metric measured no better,
    experiments/training.md, "Distance"); the field stays so that configs name it.

    ``params`` is completed with the encoder's defaults at construction, so a run's
    ``config.yaml`` records every parameter it was built with and a later change of a default
    never silently changes what an old config means (``compare`` retrains instead of reusing).
    Unknown parameter names are a :class:`ConfigError`.
    """

    encoder: str = "protores"
    params: dict = field(default_factory=dict)
    distance: str = "euclidean"

    def __post_init__(self) -> None:
        try:
            full = complete_params(self.encoder, self.params)
        except ConfigError as e:
            raise ConfigError(f"model: {e}") from None
        object.__setattr__(self, "params", {k: list(v) if isinstance(v, tuple) else v
                                            for k, v in full.items()})
        if self.distance != "euclidean":
            raise ConfigError(f"model.distance={self.distance!r}: only 'euclidean' is supported "
                              "(the scaled cosine distance is no longer part of the package, "
                              "experiments/training.md); drop the key or set it to 'euclidean'")

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

    def __post_init__(self) -> None:
        _positive(self, "train", "episodes", "lr", "lr_decay", "lr_decay_every", "val_every")
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
    head without retraining (:func:`same_training`).  ``none`` is the default, so that a stored
    run's ``config.yaml`` without a ``head`` section means a run without a head.
    """

    kind: str = "none"
    clips: int = 3000

    def __post_init__(self) -> None:
        if self.kind not in HEADS:
            raise ConfigError(f"head.kind={self.kind!r} must be one of {', '.join(map(repr, HEADS))}")
        _positive(self, "head", "clips")


@dataclass(frozen=True)
class BesideConfig:
    """Training beside a frozen embedding (:mod:`kws_proto.model.beside`).

    With ``member`` set (``"gse"``: the Google speech embedding, the ``gse`` extra), every
    training episode also scores its queries by the *joint* distance of the fused model
    (:mod:`kws_proto.model.fusion`): the trained embedding and the frozen member's, each centred
    and scaled to unit length, squared distances summed with the frozen one weighted by
    ``weight``, times a learned scale (``temperature`` at the start).  The loss is
    ``(1 - loss) * own + loss * joint``: ``own`` is the network's own episode loss, ``joint``
    the cross-entropy of the joint logits, so the trained member learns what the frozen one
    misses.  ``member=""`` (the default) trains the network alone; validation always scores
    the trained member alone.
    """

    member: str = ""
    weight: float = 1.0
    loss: float = 0.5
    temperature: float = 10.0

    def __post_init__(self) -> None:
        if self.member and self.member not in FROZEN:
            raise ConfigError(f"beside.member={self.member!r} must be '' (off) or one of "
                              f"{', '.join(map(repr, FROZEN))}")
        if not self.weight >= 0:
            raise ConfigError(f"beside.weight={self.weight!r} must be >= 0")
        if not 0 <= self.loss <= 1:
            raise ConfigError(f"beside.loss={self.loss!r} must be in [0, 1]")
        _positive(self, "beside", "temperature")


@dataclass(frozen=True)
class OpenSetConfig:
    """Rejection learnt in training (:mod:`kws_proto.model.rejection`).

    With ``loss`` > 0 (and ``episodes.unknown``: every training episode then has a row of words
    of none of its classes), each query is also scored against the episode's prototypes *and*
    a learned "none of them" distance, and the loss is ``(1 - loss) * own + loss * rejection``:
    the unknown row's queries must fall farther than that distance from every prototype, the
    others nearer to their own.  0 (the default) trains without it.
    """

    loss: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.loss <= 1:
            raise ConfigError(f"openset.loss={self.loss!r} must be in [0, 1]")


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
    beside: BesideConfig = field(default_factory=BesideConfig)
    openset: OpenSetConfig = field(default_factory=OpenSetConfig)

    def __post_init__(self) -> None:
        if self.openset.loss and not self.episodes.unknown:
            raise ConfigError("openset.loss needs episodes with a row of unknown words: set "
                              "episodes.unknown (and an 'unknown' pool in the dataset's splits.json)")
        if self.openset.loss and self.episodes.silence:
            raise ConfigError("openset.loss and episodes.silence cannot be combined yet")
        if self.openset.loss and self.beside.member:
            raise ConfigError("openset.loss and beside.member cannot be combined yet")

    def to_dict(self) -> dict:
        return to_plain(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "ExperimentConfig":
        return from_dict(cls, without_retired(d or {}), "")


def same_training(a: ExperimentConfig, b: ExperimentConfig) -> bool:
    """Whether ``a`` and ``b`` train the same encoder: equal in everything but the head."""
    return dataclasses.replace(a, head=b.head) == b


def _positive(obj, section: str, *names: str) -> None:
    for n in names:
        v = getattr(obj, n)
        if not v > 0:
            raise ConfigError(f"{section}.{n}={v!r} must be positive")
