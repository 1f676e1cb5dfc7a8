"""Config keys of levers that are no longer part of the package, and how a stored config naming them loads.

A run directory's ``config.yaml`` records every field the config had when the run was trained,
so a stored config may name a lever the package no longer has.  At the lever's "off" value the
key is accepted and dropped, so the run loads and means what it meant; any other value is a
:class:`~kws_proto.errors.ConfigError` naming the key and the experiments page that measured it
(experiments/protocol.md lists them all, with the commit that still has each lever).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from kws_proto.errors import ConfigError


class Retired(NamedTuple):
    """A retired key: its ``off`` value (``None``: any value is dropped, for a setting that only
    mattered with the lever on), the ``lever`` it belonged to and the experiments ``page``."""

    off: Any
    lever: str
    page: str


#: ``(section, key)`` -> :class:`Retired`.
RETIRED = {
    ("augment", "speed"): Retired(0.0, "speed perturbation", "experiments/augmentation.md"),
    ("augment", "lowpass_prob"): Retired(0.0, "the low-pass augmentation",
                                         "experiments/augmentation.md"),
    ("augment", "lowpass_hz"): Retired(None, "the low-pass augmentation",
                                       "experiments/augmentation.md"),
    ("augment", "freq_warp"): Retired(0.0, "frequency warping (VTLP)",
                                      "experiments/augmentation.md"),
    ("data", "synth_festival_speakers"): Retired(0, "the Festival synthesiser",
                                                 "experiments/synthesisers.md"),
    ("data", "synth_festival_voices"): Retired(None, "the Festival synthesiser",
                                               "experiments/synthesisers.md"),
    ("train", "distill"): Retired(0.0, "distillation", "experiments/distillation.md"),
    ("train", "teacher"): Retired(None, "distillation", "experiments/distillation.md"),
    ("train", "teacher_centre"): Retired(None, "distillation", "experiments/distillation.md"),
}


def without_retired(d):
    """The raw config mapping ``d`` without the :data:`RETIRED` keys at their off values.

    Raises
    ------
    ConfigError
        A retired key at any other value, naming ``section.key=value``, the lever and its page.
    """
    if not isinstance(d, dict):
        return d
    out = dict(d)
    for (section, key), (off, lever, page) in RETIRED.items():
        values = out.get(section)
        if not isinstance(values, dict) or key not in values:
            continue
        if off is not None and values[key] != off and values[key] not in ([], None):
            raise ConfigError(f"{section}.{key}={values[key]!r}: {lever} is no longer part of the "
                              f"package ({page}); drop the key")
        out[section] = {k: v for k, v in values.items() if k != key}
    return out
