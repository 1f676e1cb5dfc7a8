"""Variants of the spotting benchmark: a model and a decision setting
(``MODEL@key=value,...`` on the command line), scored by :func:`kws_proto.eval.spot_eval.spot_eval`
on identical trials (the keys' meaning: :mod:`kws_proto.eval.spot_eval`, "Variants")."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from kws_proto.errors import ConfigError
from kws_proto.spot.bank import PROTOTYPE, SCORES
from kws_proto.spot.cohort import NORMS, TOP, Z_CLIP
from kws_proto.spot.decision import NEGATIVE_QUANTILE, SUPPORT_MARGIN
from kws_proto.spot.detect import MAX_GAP, MIN_DB, MIN_HITS
from kws_proto.spot.windows import HOP

SHIPPED_BG = "shipped"  # bg=shipped: the background the variant's model ships


@dataclass(frozen=True)
class Variant:
    """A model and a decision setting scored on the trials."""

    model: str = "default"
    hop: float = HOP
    min_hits: int = MIN_HITS
    max_gap: int = MAX_GAP
    min_db: float = MIN_DB
    negatives: int = 0
    margin: float = SUPPORT_MARGIN
    quantile: float = NEGATIVE_QUANTILE
    text: int = 0
    real: int = -1
    confusables: int = 0
    score: str = PROTOTYPE
    norm: str = ""
    bg: str = ""
    top: int = TOP
    level: float | None = None
    tnorm: int = 0
    context: int = 0
    twin: int = 0
    shift: float | None = None
    label: str = ""

    @property
    def name(self) -> str:
        if self.label:
            return self.label
        base = Variant(self.model)
        extra = [f"{k}={getattr(self, k):g}" for k in ("hop", "min_hits", "max_gap", "min_db",
                                                       "negatives", "margin", "quantile", "text",
                                                       "real", "confusables", "context", "twin")
                 if getattr(self, k) != getattr(base, k)]
        extra += [f"score={self.score}"] if self.score != base.score else []
        extra += [f"norm={self.norm},bg={Path(self.bg).name}"] if self.norm else []
        extra += [f"top={self.top}"] if self.top != base.top else []
        extra += [f"level={self.level:g}"] if self.level is not None else []
        extra += [f"tnorm={self.tnorm}"] if self.tnorm else []
        extra += [f"shift={self.shift:g}"] if self.shift is not None else []
        return self.model + (f"@{','.join(extra)}" if extra else "")

    def check(self) -> None:
        if not self.hop > 0:
            raise ConfigError(f"variant {self.name}: hop={self.hop} must be > 0 seconds")
        if self.min_hits < 1:
            raise ConfigError(f"variant {self.name}: min_hits={self.min_hits} must be >= 1")
        if self.max_gap < 0:
            raise ConfigError(f"variant {self.name}: max_gap={self.max_gap} must be >= 0")
        if self.negatives < 0:
            raise ConfigError(f"variant {self.name}: negatives={self.negatives} must be >= 0")
        if not self.margin > 0:
            raise ConfigError(f"variant {self.name}: margin={self.margin} must be > 0")
        if not 0 < self.quantile < 1:
            raise ConfigError(f"variant {self.name}: quantile={self.quantile} must be in (0, 1)")
        if self.text < 0 or self.confusables < 0:
            raise ConfigError(f"variant {self.name}: text={self.text} and confusables="
                              f"{self.confusables} must be >= 0")
        if self.real < -1 or (self.real >= 0 and not self.text):
            raise ConfigError(f"variant {self.name}: real={self.real} (recorded clips kept; -1: "
                              "all) must be >= 0, and is for text=N variants")
        if (self.text or self.confusables) and (self.negatives or self.margin != SUPPORT_MARGIN):
            raise ConfigError(f"variant {self.name}: text and confusables enrol with the shipped "
                              "rule and do not combine with negatives or margin")
        if self.score not in SCORES:
            raise ConfigError(f"variant {self.name}: score={self.score!r} is not a scoring rule "
                              f"({', '.join(SCORES)})")
        if (self.text or self.confusables) and self.score != PROTOTYPE:
            raise ConfigError(f"variant {self.name}: text and confusables enrol with the "
                              f"prototype rule, not score={self.score}")
        if math.isnan(self.min_db):
            raise ConfigError(f"variant {self.name}: min_db must be a number")
        self._check_norm()

    def _check_norm(self) -> None:
        """``norm`` is a normalisation with its ``bg`` (and without text enrolment); ``bg``,
        ``top`` and ``level`` go with it."""
        if self.norm and self.norm not in NORMS:
            raise ConfigError(f"variant {self.name}: norm={self.norm!r} is not a score "
                              f"normalisation ({', '.join(NORMS)})")
        if bool(self.norm) != bool(self.bg):
            raise ConfigError(f"variant {self.name}: norm=snorm|ratio and bg=FILE (the cohort: "
                              "`kws-proto background` of the variant's model, or "
                              f"{SHIPPED_BG}: the one it ships) go together")
        if not self.norm and (self.top != TOP or self.level is not None or self.tnorm):
            raise ConfigError(f"variant {self.name}: top, level and tnorm are for norm=snorm "
                              "or norm=ratio")
        if self.tnorm and (self.tnorm < 2 or self.score != PROTOTYPE):
            raise ConfigError(f"variant {self.name}: tnorm={self.tnorm} (the window side of "
                              "s-norm) is a number of background windows >= 2, with "
                              f"score={PROTOTYPE}")
        if self.norm and (self.text or self.confusables or self.negatives
                          or self.margin != SUPPORT_MARGIN):
            raise ConfigError(f"variant {self.name}: norm sets the threshold at a cohort level; "
                              "it does not go with text, confusables, negatives or margin")
        if self.top < 2:
            raise ConfigError(f"variant {self.name}: top={self.top} must be >= 2")
        if self.twin not in (0, 1) or (self.twin and not (self.context > 0 and self.norm)):
            raise ConfigError(f"variant {self.name}: twin={self.twin} (1: each keyword scored by "
                              "the nearer of its plain and its context prototype) needs context=K "
                              "and norm=snorm or norm=ratio")
        if self.shift is not None and not (self.context and abs(self.shift) <= Z_CLIP):
            raise ConfigError(f"variant {self.name}: shift={self.shift} (the cohort units a "
                              "keyword in context is cut looser) needs context=K and "
                              f"|shift| <= {Z_CLIP:g}")
        if self.level is not None and not abs(self.level) <= Z_CLIP:
            raise ConfigError(f"variant {self.name}: level={self.level} must be a z within "
                              f"±{Z_CLIP:g}")


_VARIANT_TYPES = {"hop": float, "min_hits": int, "max_gap": int, "min_db": float,
                  "negatives": int, "margin": float, "quantile": float, "text": int, "real": int,
                  "confusables": int, "score": str, "norm": str, "bg": str, "top": int,
                  "level": float, "tnorm": int, "context": int, "twin": int, "shift": float,
                  "label": str}


def parse_variant(spec: str) -> Variant:
    """``MODEL`` or ``MODEL@key=value,...`` (keys: hop, min_hits, max_gap, min_db, negatives,
    margin, quantile, text, real, confusables, score, norm, bg, top, level, tnorm, context, twin,
    shift, label)
    as a
    :class:`Variant`."""
    model, _, rest = str(spec).partition("@")
    if not model:
        raise ConfigError(f"variant {spec!r}: no model before '@' (a run directory or default)")
    kwargs = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not eq or key not in _VARIANT_TYPES:
            raise ConfigError(f"variant {spec!r}: {item!r} is not key=value with a key of "
                              f"{', '.join(_VARIANT_TYPES)}")
        try:
            kwargs[key] = _VARIANT_TYPES[key](value)
        except ValueError:
            kind = "an integer" if _VARIANT_TYPES[key] is int else "a number"
            raise ConfigError(f"variant {spec!r}: {key}={value!r} is not {kind}") from None
    v = Variant(model, **kwargs)
    v.check()
    return v


def parse_variants(variants, cohort) -> list[Variant]:
    """``variants`` (:class:`Variant` or ``MODEL@...`` strings) parsed and checked; a variant
    with ``negatives`` needs a ``cohort``."""
    variants = [parse_variant(v) if isinstance(v, str) else v for v in variants]
    if not variants:
        raise ConfigError("no model to evaluate")
    for v in variants:
        v.check()
        if v.context and (not v.norm or v.context < 0 or v.text or v.confusables):
            raise ConfigError(f"variant {v.name}: context={v.context} is for a normalised keyword "
                              "(norm=snorm,bg=...) of recorded clips, not for text enrolment")
        if v.negatives and cohort is None:
            raise ConfigError(f"variant {v.name}: negatives={v.negatives} needs --cohort DATASET "
                              "(clips of words that are not in the stream)")
    return variants
