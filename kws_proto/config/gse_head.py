"""The typed config of a head on the Google speech embedding (:mod:`kws_proto.model.gse_head`).

A YAML file of its fields (``experiments/configs/gse_head/gse_head.yaml`` is the shipped head's)::

    name: gse_head
    corpora:
      - {dataset: data/synth-870x50, source: synth, synth_words: 870,
         synth_words_file: experiments/words/large.txt}
      - {dataset: data/so762-split/train, source: prepared}
    exclude_words: [zero, one, alexa]
    episodes: 20000
    n_way: 20

Unknown keys are a :class:`ConfigError` naming them; the config is written into the head's record.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from kws_proto.audio.augment import AugmentConfig
from kws_proto.config.schema import DataConfig
from kws_proto.errors import ConfigError


@dataclass(frozen=True)
class GSEHeadConfig:
    """The head's training corpora, the words left out of them, its size and its episodes.

    ``corpora``: datasets whose words are the training classes (a word in two corpora is one
    class); ``exclude_words``: words never trained on (the test sets' words), case-insensitive;
    ``n_way`` x (``k_shot`` + ``n_query``) clips an episode; ``temperature``: the starting scale of
    the learned logit scale (distances of unit vectors are at most 4).  ``n_unknown`` > 0 adds that
    many queries of words of none of the episode's classes, and ``openset_loss`` is the weight of
    the rejection term they enter (:mod:`kws_proto.train.gse_head`).  ``neighbours``: the share of
    an episode's clips shown said between two other words of their voice
    (:mod:`kws_proto.audio.neighbours`), as a keyword sits in running speech.  ``augmented``: the
    share shown after the waveform augmentation ``augment`` (reverberation, time shift, the
    corpus's background noise; one fixed draw per clip), as a real microphone and room change a
    word; ``neighbours + augmented`` is at most 1, the rest of the clips are shown alone.
    ``heads``: how many such networks, from the seeds ``seed``, ``seed + 1``, …, the head averages
    (:class:`~kws_proto.model.gse_head.GSEHead`)."""

    name: str = "gse_head"
    corpora: tuple[DataConfig, ...] = ()
    exclude_words: tuple[str, ...] = ()
    episodes: int = 20000
    n_way: int = 20
    k_shot: int = 5
    n_query: int = 5
    hidden: int = 256
    dim: int = 128
    dropout: float = 0.2
    lr: float = 0.001
    temperature: float = 10.0
    n_unknown: int = 0
    openset_loss: float = 0.0
    neighbours: float = 0.0
    augmented: float = 0.0
    augment: AugmentConfig = field(default_factory=lambda: AugmentConfig(reverb_prob=0.5))
    heads: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        for key in ("episodes", "n_way", "k_shot", "n_query", "hidden", "dim", "heads"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"gse_head.{key}={getattr(self, key)} must be positive")
        if self.n_way < 2:
            raise ConfigError(f"gse_head.n_way={self.n_way} must be at least 2")
        if self.n_unknown < 0 or not 0 <= self.openset_loss <= 1:
            raise ConfigError(f"gse_head: n_unknown={self.n_unknown} must be >= 0 and "
                              f"openset_loss={self.openset_loss} in [0, 1]")
        if not (0 <= self.neighbours <= 1 and 0 <= self.augmented <= 1
                and self.neighbours + self.augmented <= 1):
            raise ConfigError(f"gse_head: neighbours={self.neighbours} and augmented="
                              f"{self.augmented} must be shares in [0, 1] with a sum of at most 1")
        if (self.n_unknown > 0) != (self.openset_loss > 0):
            raise ConfigError(f"gse_head: n_unknown={self.n_unknown} and openset_loss="
                              f"{self.openset_loss} go together (both 0, or both positive)")
        if not 0 <= self.dropout < 1 or self.lr <= 0 or self.temperature <= 0:
            raise ConfigError(f"gse_head: dropout={self.dropout} must be in [0, 1), lr={self.lr} "
                              f"and temperature={self.temperature} positive")

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "corpora": [dataclasses.asdict(c) for c in self.corpora],
                "exclude_words": list(self.exclude_words)}

    @classmethod
    def from_dict(cls, raw: dict) -> GSEHeadConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - names)
        if unknown:
            raise ConfigError(f"gse_head: unknown key(s) {unknown}; known: {sorted(names)}")
        corpora = []
        for i, c in enumerate(raw.get("corpora") or ()):
            try:
                corpora.append(DataConfig(**c))
            except TypeError as e:
                raise ConfigError(f"gse_head.corpora[{i}]: {e}") from e
        if isinstance(raw.get("augment"), dict):
            raw = {**raw, "augment": AugmentConfig.from_dict(raw["augment"])}
        return cls(**{**raw, "corpora": tuple(corpora),
                      "exclude_words": tuple(str(w) for w in raw.get("exclude_words") or ())})


def load_gse_head_config(path: str | Path) -> GSEHeadConfig:
    """Read a head's config from a YAML file; a missing file or a bad key names the file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the head's config ({e})") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a head's config is a mapping of its fields")
    try:
        return GSEHeadConfig.from_dict(raw)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from e
