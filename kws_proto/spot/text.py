"""Keywords enrolled from text: synthesised support clips, alone or beside recorded ones.

    spotter.enroll_text(bank, "jarvis", "hey jarvis", voices=50)              # text only
    spotter.enroll_text(bank, "jarvis", "hey jarvis", clips=["j1.flac"])     # 1 recorded + 50
    spotter.enroll_text(bank, "jarvis", "hey jarvis", confusables=20)         # + negatives

The text is spoken by ``voices`` built-in eSpeak NG voice settings
(:func:`kws_proto.spot.synthetic.say`); every synthesised clip then goes through the same front
end and enrolment views as a recorded clip (:meth:`KeywordSpotter.embed_views`), and the
prototype is the mean over all support clips, recorded and synthesised alike.  The threshold
rule is enrolment's (:func:`kws_proto.spot.decision.calibrate_threshold`, over all of them);
``negatives`` and the ``confusables`` (:mod:`kws_proto.spot.confusables`: words one phoneme away,
``confusable_voices`` voices each) cap it.  The keyword's calibration records what was
synthesised: ``synthesised`` (engine, text, voices asked for, clips made, recorded clips, seed)
and, with confusables, ``confusables`` (the phoneme strings said and the number of clips).

Measured against recorded support on real speech: experiments/spotting.md.
"""

from __future__ import annotations

import numpy as np

from kws_proto.spot.decision import calibrate_threshold, clip_embeddings

VOICES = 50
CONFUSABLE_VOICES = 3


def enroll_text(spotter, bank, name: str, text: str, voices: int = VOICES, files=(),
                negatives=(), confusables: int = 0, confusable_voices: int = CONFUSABLE_VOICES,
                replace: bool = False, threshold: float | None = None, seed: int = 0,
                views_ms=(-100.0, 0.0, 100.0)):
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
    from kws_proto.spot.confusables import confusable_clips
    from kws_proto.spot.synthetic import check_text, phonemes, say, voice_settings

    spotter.check_bank(bank)
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
    kw = bank.make_keyword(name, clip_embeddings(views),
                           [getattr(f, "name", str(f)) for f in files] + [n for n, _ in said], threshold, info)
    bank.add(kw, replace=replace)
    return kw
