"""Keywords enrolled from text: synthesised support clips, alone or beside recorded ones.

    spotter.enroll_text(bank, "jarvis", "hey jarvis", voices=50)              # text only
    spotter.enroll_text(bank, "jarvis", "hey jarvis", clips=["j1.flac"])     # 1 recorded + 50
    spotter.enroll_text(bank, "jarvis", "hey jarvis", confusables=20)         # + negatives

The text is spoken by ``voices`` built-in eSpeak NG voice settings
(:func:`kws_proto.spot.synthetic.say`); every synthesised clip then goes through the same front
end and enrolment views as a recorded clip (:meth:`KeywordSpotter.embed_views`).  The prototype
is the mean of the synthesised clips' embeddings, or, beside recorded clips, the mean of two
halves: the recorded clips' mean and the synthesised clips' mean (``recorded_weight`` 0.5; None:
every clip weighs the same; :func:`prototype_weights`).  Halves measured better on FSDD and
Picovoice (5-way, one recorded clip + 50 synthesised: 83.8% and 96.1% against 76.3% and 94.3% for
the plain mean; experiments/spotting.md).  The threshold rule is enrolment's
(:func:`kws_proto.spot.decision.calibrate_threshold`, over all support clips, against the
prototype that is stored: each clip's leave-one-out prototype is the weighted mean of the others);
``negatives`` and the ``confusables`` (:mod:`kws_proto.spot.confusables`: words one phoneme away,
``confusable_voices`` voices each) cap it.  The keyword's calibration records what was
synthesised: ``synthesised`` (engine, text, voices asked for, clips made, recorded clips, seed)
and, with confusables, ``confusables`` (the phoneme strings said and the number of clips).

Measured against recorded support on real speech: experiments/spotting.md.
"""

from __future__ import annotations

import numpy as np

from data_prep.espeak import get_synthesizer
from kws_proto.errors import ConfigError
from kws_proto.spot.confusables import confusable_clips
from kws_proto.spot.enrolment import ENROL_SHIFTS_MS, enrol_keyword
from kws_proto.spot.synthetic import check_text, phonemes, say, voice_settings

VOICES = 50
CONFUSABLE_VOICES = 3
RECORDED_WEIGHT = 0.5


def enroll_text(spotter, bank, name: str, text: str, voices: int = VOICES, files=(),
                negatives=(), confusables: int = 0, confusable_voices: int = CONFUSABLE_VOICES,
                replace: bool = False, threshold: float | None = None, seed: int = 0,
                views_ms=ENROL_SHIFTS_MS, recorded_weight: float | None = RECORDED_WEIGHT,
                norm: str | None = None, background=None):
    """Enrol keyword ``name`` of ``bank`` from ``text`` said by ``voices`` voices (0: none, when
    recorded ``files`` are given) plus the recorded ``files``, with ``negatives`` (audio files;
    :meth:`KeywordSpotter.enroll_text <kws_proto.spot.spotter.KeywordSpotter.enroll_text>`
    expands folders), embedded at the views ``views_ms``; ``norm`` and ``background``: as
    :func:`~kws_proto.spot.enrolment.enrol_keyword` takes them (a keyword joining a bank of
    normalised keywords); returns the :class:`~kws_proto.spot.bank.Keyword`.

    Raises
    ------
    ConfigError
        Empty text, characters the synthesiser cannot say, nothing it can say within a clip,
        ``voices`` or ``confusables`` not a valid count.
    """
    spotter.check_bank(bank)
    if recorded_weight is not None and not 0 <= recorded_weight <= 1:
        raise ConfigError(f"recorded_weight={recorded_weight!r} must be in [0, 1] or None")
    text = check_text(text)
    phonemes(text)  # refuses a text eSpeak NG finds nothing to say in
    files = list(files)
    said = [] if voices == 0 and files else _say(spotter, text, voices, seed)
    views = spotter.embed_views(files + [y for _, y in said], views_ms)  # [k, S, d]: recorded first
    neg, info = _negatives(spotter, list(negatives), text, confusables, confusable_voices, seed)
    weights = prototype_weights(len(files), len(said), recorded_weight)
    info = {"synthesised": _synthesised(text, voices, said, files, seed), **info}
    if weights is not None:
        w = float(recorded_weight)
        info["prototype"] = f"{w:g} x recorded mean + {1 - w:g} x synthesised mean"
    names = [getattr(f, "name", str(f)) for f in files] + [n for n, _ in said]
    kw = enrol_keyword(views, name, names, neg, threshold=threshold, weights=weights,
                       views_ms=views_ms, calibration=info, norm=norm, background=background)
    bank.add(kw, replace=replace)
    return kw


def prototype_weights(recorded: int, synthesised: int,
                      recorded_weight: float | None = RECORDED_WEIGHT) -> np.ndarray | None:
    """Per-clip prototype weights ``[recorded + synthesised]`` (recorded clips first) that make
    the prototype ``recorded_weight`` x the recorded clips' mean + the rest x the synthesised
    clips' mean; None (the plain mean) without both kinds of clip or without a weight."""
    if not (recorded and synthesised) or recorded_weight is None:
        return None
    w = float(recorded_weight)
    return np.array([w / recorded] * recorded + [(1 - w) / synthesised] * synthesised)


def _say(spotter, text: str, voices: int, seed: int) -> list[tuple[str, np.ndarray]]:
    """``text`` said by ``voices`` voices at the front end's rate, within one clip."""
    f = spotter.features
    return say(text, voice_settings(voices, seed), sr=f.sample_rate, max_seconds=f.clip_seconds,
               seed=seed)


def _negatives(spotter, files: list, text: str, confusables: int, voices: int, seed: int):
    """Embeddings of the negative ``files`` and of ``confusables`` words one phoneme from
    ``text`` (``[m, d]`` or None), and the calibration entry of the confusables (``{}``: none)."""
    neg = [np.asarray(spotter.embed_files(files))] if files else []
    info = {}
    if confusables:
        sr = spotter.features.sample_rate
        conf, words = confusable_clips(text, confusables, voices, sr=sr, seed=seed)
        neg.append(np.asarray(spotter.embed(spotter.load_clips([y for _, y in conf]))))
        info["confusables"] = {"phonemes": words, "clips": len(conf), "voices_each": voices}
    return (np.concatenate(neg) if neg else None), info


def _synthesised(text: str, voices: int, said: list, files: list, seed: int) -> dict:
    """The calibration entry of what was synthesised."""
    return {"engine": f"eSpeak NG ({get_synthesizer().backend})", "text": text,
            "voices": int(voices), "clips": len(said), "recorded": len(files), "seed": int(seed)}
