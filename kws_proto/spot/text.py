"""Keywords enrolled from text: synthesised support clips, alone or beside recorded ones.

    spotter.enroll_text(bank, "jarvis", "hey jarvis", voices=50)              # text only
    spotter.enroll_text(bank, "jarvis", "hey jarvis", clips=["j1.flac"])     # 1 recorded + 50
    spotter.enroll_text(bank, "jarvis", "hey jarvis", confusables=20)         # + negatives

The text is spoken by ``voices`` built-in eSpeak NG voice settings
(:func:`kws_proto.spot.synthetic.say`); every synthesised clip then goes through the same front
end and enrolment views as a recorded clip (:meth:`KeywordSpotter.embed_views`).  The prototype
is the mean of the synthesised clips' embeddings, or, beside recorded clips, the mean of two
halves: the recorded clips' mean and the synthesised clips' mean (``recorded_weight`` 0.5; None:
every clip weighs the same).  Halves measured better on FSDD and Picovoice (5-way, one recorded
clip + 50 synthesised: 83.8% and 96.1% against 76.3% and 94.3% for the plain mean;
experiments/spotting.md).  The threshold rule is enrolment's
(:func:`kws_proto.spot.decision.calibrate_threshold`, over all support clips);
``negatives`` and the ``confusables`` (:mod:`kws_proto.spot.confusables`: words one phoneme away,
``confusable_voices`` voices each) cap it.  The keyword's calibration records what was
synthesised: ``synthesised`` (engine, text, voices asked for, clips made, recorded clips, seed)
and, with confusables, ``confusables`` (the phoneme strings said and the number of clips).

Measured against recorded support on real speech: experiments/spotting.md.
"""

from __future__ import annotations

from dataclasses import replace as replace_field

import numpy as np

from kws_proto.spot.decision import calibrate_threshold, clip_embeddings

VOICES = 50
CONFUSABLE_VOICES = 3
RECORDED_WEIGHT = 0.5


def enroll_text(spotter, bank, name: str, text: str, voices: int = VOICES, files=(),
                negatives=(), confusables: int = 0, confusable_voices: int = CONFUSABLE_VOICES,
                replace: bool = False, threshold: float | None = None, seed: int = 0,
                views_ms=(-100.0, 0.0, 100.0), recorded_weight: float | None = RECORDED_WEIGHT):
    """Enrol keyword ``name`` of ``bank`` from ``text`` said by ``voices`` voices (0: none, when
    recorded ``files`` are given) plus the recorded ``files``, with ``negatives`` (audio files;
    :meth:`KeywordSpotter.enroll_text <kws_proto.spot.spotter.KeywordSpotter.enroll_text>`
    expands folders), embedded at the views ``views_ms``; returns the
    :class:`~kws_proto.spot.bank.Keyword`.

    Raises
    ------
    ConfigError
        Empty text, characters the synthesiser cannot say, nothing it can say within a clip,
        ``voices`` or ``confusables`` not a valid count.
    """
    from data_prep.espeak import get_synthesizer
    from kws_proto.errors import ConfigError
    from kws_proto.spot.confusables import confusable_clips
    from kws_proto.spot.synthetic import check_text, phonemes, say, voice_settings

    spotter.check_bank(bank)
    if recorded_weight is not None and not 0 <= recorded_weight <= 1:
        raise ConfigError(f"recorded_weight={recorded_weight!r} must be in [0, 1] or None")
    text = check_text(text)
    phonemes(text)  # refuses a text eSpeak NG finds nothing to say in
    sr = spotter.features.sample_rate
    files = list(files)
    if voices == 0 and files:  # recorded support only (with confusables, say)
        said = []
    else:
        said = say(text, voice_settings(voices, seed), sr=sr,
                   max_seconds=spotter.features.clip_seconds, seed=seed)
    views = spotter.embed_views(files + [y for _, y in said], views_ms)  # [k, S, d]
    neg = [np.asarray(spotter.embed_files(list(negatives)))] if len(negatives) else []
    conf_info = None
    if confusables:
        conf, words = confusable_clips(text, confusables, confusable_voices, sr=sr, seed=seed)
        neg.append(np.asarray(spotter.embed(spotter.load_clips([y for _, y in conf]))))
        conf_info = {"phonemes": words, "clips": len(conf), "voices_each": confusable_voices}
    if threshold is None:
        threshold, info = calibrate_threshold(views, np.concatenate(neg) if neg else None)
    else:
        info = {"rule": "given by hand"}
    info["views_ms"] = list(views_ms)
    info["synthesised"] = {"engine": f"eSpeak NG ({get_synthesizer().backend})", "text": text,
                           "voices": int(voices), "clips": len(said), "recorded": len(files),
                           "seed": int(seed)}
    if conf_info is not None:
        info["confusables"] = conf_info
    support = clip_embeddings(views)  # [k, d]: the recorded clips first
    kw = bank.make_keyword(name, support,
                           [getattr(f, "name", str(f)) for f in files] + [n for n, _ in said],
                           threshold, info)
    if files and said and recorded_weight is not None:
        w = float(recorded_weight)
        proto = w * support[:len(files)].mean(axis=0) + (1 - w) * support[len(files):].mean(axis=0)
        info["prototype"] = f"{w:g} x recorded mean + {1 - w:g} x synthesised mean"
        kw = replace_field(kw, prototype=proto.astype(np.float32), calibration=info)
    bank.add(kw, replace=replace)
    return kw
