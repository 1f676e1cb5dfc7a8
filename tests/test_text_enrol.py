"""Keywords enrolled from text (real eSpeak NG voices), confusable negatives, and their errors."""

from __future__ import annotations

import numpy as np
import pytest

from kws_proto.cli import main
from kws_proto.errors import ConfigError
from kws_proto.spot.bank import load_bank, save_bank
from kws_proto.spot.confusables import (CONSONANTS, VOWELS, confusable_clips, confusables,
                                        one_edit_away, phoneme_tokens)
from kws_proto.spot.synthetic import check_text, keyword_text, phonemes, say, voice_settings

pytest.importorskip("espeakng_loader", reason="text enrolment needs eSpeak NG (espeakng-loader)")


@pytest.mark.parametrize("bad, match", [("", "empty"), ("   ", "empty"), ("hey!", "'!'"),
                                        ("日本", "'日'"), (None, "empty")])
def test_text_the_synthesiser_cannot_say_is_refused(bad, match):
    with pytest.raises(ConfigError, match=match):
        check_text(bad)


def test_a_text_too_long_for_a_clip_is_refused():
    long = "the quick brown fox jumps over the lazy dog twice in a row"
    with pytest.raises(ConfigError, match="cannot say .*within 1 s"):
        say(long, voice_settings(2), max_seconds=1.0)


def test_keyword_names_as_text():
    assert keyword_text("7") == "seven" and keyword_text("smart_mirror") == "smart mirror"
    assert check_text("  hey   jarvis ") == "hey jarvis"


def test_said_clips_are_words_between_silence():
    clips = say("jarvis", voice_settings(4), sr=16000)
    assert len(clips) == 4 and len({n for n, _ in clips}) == 4
    for name, y in clips:
        assert name.startswith("espeak:") and name.endswith(":jarvis")
        assert y.dtype == np.float32 and 16000 < len(y) <= 2 * 16000
        assert np.abs(y[:4000]).max() == 0 and 0.3 < np.abs(y).max() <= 1.0  # padded, at -6 dBFS


def _edit_distance(a: list[str], b: list[str]) -> int:
    d = np.arange(len(b) + 1)
    for i, x in enumerate(a, 1):
        prev, d[0] = d.copy(), i
        for j, y in enumerate(b, 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (x != y))
    return int(d[-1])


@pytest.mark.parametrize("text", ["hey jarvis", "computer", "seven", "view glass"])
def test_confusables_are_one_phoneme_from_the_keyword_and_not_it(text):
    base = phonemes(text)
    assert "".join(phoneme_tokens(base)) == base
    words = confusables(text, 12, seed=0)
    assert 5 <= len(words) <= 12 and len(set(words)) == len(words)
    assert words == confusables(text, 12, seed=0)  # seeded
    for w in words:
        assert w != base and w in one_edit_away(base)
        a, b = phoneme_tokens(base), phoneme_tokens(w)
        assert _edit_distance(a, b) == 1
        assert any(t in CONSONANTS or t in VOWELS for t in b)


def test_confusable_clips_are_spoken_and_sound_unlike_silence():
    clips, words = confusable_clips("computer", 4, voices=2)
    assert len(words) == 4 and len(clips) == 8
    for name, y in clips:
        assert name.startswith("confusable:") and np.sqrt(np.mean(y ** 2)) > 1e-3
    with pytest.raises(ConfigError, match="confusables=0"):
        confusables("computer", 0)


@pytest.fixture(scope="module")
def text_bank(keyword_spotter, keyword_clips):
    bank = keyword_spotter.new_bank()
    for name in keyword_clips["keywords"]:
        keyword_spotter.enroll_text(bank, name, keyword_text(name), voices=20)
    return bank


def test_text_enrolled_keywords_find_real_clips(keyword_spotter, text_bank, keyword_clips,
                                                tmp_path, capsys):
    held = [(name, p) for name, paths in keyword_clips["keywords"].items() for p in paths[5:15]]
    got = keyword_spotter.classify(text_bank, [p for _, p in held])
    accuracy = np.mean([c.nearest == name for (name, _), c in zip(held, got)])
    with capsys.disabled():
        print(f"\n{keyword_clips['source']}: nearest text-enrolled keyword of {len(held)} real "
              f"clips: {100 * accuracy:.0f}% (3 keywords, chance 33%)")
    assert accuracy > 0.5
    kw = text_bank[next(iter(keyword_clips["keywords"]))]
    assert len(kw.clips) == 20 and all(c.startswith("espeak:") for c in kw.clips)
    syn = kw.calibration["synthesised"]
    assert syn["voices"] == 20 and syn["clips"] == 20 and syn["recorded"] == 0
    assert "eSpeak NG" in syn["engine"]
    again = load_bank(save_bank(text_bank, tmp_path / "t.npz"))[kw.name]
    assert again.calibration == kw.calibration


def test_recorded_clips_beside_text_and_confusables_as_negatives(keyword_spotter, keyword_clips):
    name, paths = next(iter(keyword_clips["keywords"].items()))
    bank = keyword_spotter.new_bank()
    kw = keyword_spotter.enroll_text(bank, name, keyword_text(name), voices=10, clips=paths[:1])
    assert kw.clips[0] == paths[0].name and len(kw.clips) == 11
    assert kw.calibration["synthesised"]["recorded"] == 1
    # the recorded clip is one half of the prototype, the 10 synthesised ones the other
    np.testing.assert_allclose(kw.prototype, (kw.support[0] + kw.support[1:].mean(0)) / 2,
                               rtol=1e-5, atol=1e-6)
    plain = keyword_spotter.enroll_text(bank, "plain", keyword_text(name), voices=10,
                                        clips=paths[:1], recorded_weight=None)
    np.testing.assert_allclose(plain.prototype, plain.support.mean(0), rtol=1e-5, atol=1e-6)
    capped = keyword_spotter.enroll_text(bank, name, keyword_text(name), voices=10,
                                         clips=paths[:1], confusables=6, replace=True)
    conf = capped.calibration["confusables"]
    assert conf["clips"] == 3 * len(conf["phonemes"]) and capped.calibration["negatives"] == conf["clips"]
    assert capped.threshold <= kw.threshold  # negatives only ever lower it
    with pytest.raises(ConfigError, match="voices=0"):
        keyword_spotter.enroll_text(bank, "x", "computer", voices=0)
    with pytest.raises(ConfigError, match="'#'"):
        keyword_spotter.enroll_text(bank, "x", "c#mputer")


def test_the_threshold_is_calibrated_against_the_stored_weighted_prototype(keyword_spotter,
                                                                         keyword_clips):
    """Beside recorded clips the prototype is 0.5 x their mean + 0.5 x the synthesised mean; the
    leave-one-out distances and the negatives' quantile are measured against that prototype
    (each clip's: the weighted mean of the others), not the plain mean of the clips."""
    sp = keyword_spotter
    name, paths = next(iter(keyword_clips["keywords"].items()))
    negatives = paths[5:25]  # the keyword itself by other voices: close, so they cap
    bank = sp.new_bank()
    kw = sp.enroll_text(bank, name, keyword_text(name), voices=6, clips=paths[:2],
                        negatives=negatives)
    f = sp.features
    said = say(keyword_text(name), voice_settings(6, 0), sr=f.sample_rate,
               max_seconds=f.clip_seconds, seed=0)
    views = sp.embed_views(list(paths[:2]) + [y for _, y in said]).astype(np.float64)  # [8, 3, d]
    w = np.array([0.25, 0.25] + [0.5 / 6] * 6)
    clips = views.mean(axis=1)
    proto = (w[:, None] * clips).sum(0)
    np.testing.assert_allclose(kw.prototype, proto, rtol=1e-4, atol=1e-5 * np.abs(proto).max())
    loo = [np.mean(np.sum((views[i] - (proto - w[i] * clips[i]) / (1 - w[i])) ** 2, axis=1))
           for i in range(8)]
    support_limit = 1.25 * np.mean(loo)
    neg = sp.embed_files(negatives).astype(np.float64)
    cap = np.quantile(((neg - kw.prototype) ** 2).sum(axis=1), 0.05)
    plain_cap = np.quantile(((neg - clips.mean(0)) ** 2).sum(axis=1), 0.05)
    assert abs(plain_cap - cap) > 1e-3 * cap  # the two prototypes tell apart
    assert kw.calibration["support_limit"] == pytest.approx(support_limit, rel=1e-4)
    assert kw.calibration["negative_limit"] == pytest.approx(cap, rel=1e-4)
    assert kw.threshold == pytest.approx(min(support_limit, cap), rel=1e-4)


def test_cli_enroll_text(trained_run, keyword_clips, tmp_path, capsys):
    bank = tmp_path / "text.bank.npz"
    name, paths = next(iter(keyword_clips["keywords"].items()))
    args = ["enroll", str(trained_run), "--bank", str(bank), "--keyword", "hey " + name, "--text",
            "--voices", "8"]
    assert main(args) == 0
    assert "(8 synthesised)" in capsys.readouterr().out
    assert main(["enroll", "--bank", str(bank), "--keyword", name, "--text", "--spoken",
                 keyword_text(name), "--voices", "8", "--confusables", "4", str(paths[0])]) == 0
    out = capsys.readouterr().out
    assert "9 clips (8 synthesised)" in out and "negatives" in out
    kw = load_bank(bank)[name]
    assert kw.calibration["synthesised"]["text"] == keyword_text(name)
    assert main(["bank", str(bank)]) == 0
    assert f"(8 synthesised from 'hey {name}')" in capsys.readouterr().out
    assert main(["enroll", "--bank", str(bank), "--keyword", "bad!", "--text"]) == 2
    assert "cannot say '!'" in capsys.readouterr().err
    assert main(["enroll", "--bank", str(bank), "--keyword", "k", "--spoken", "x"]) == 2
    assert "needs --text" in capsys.readouterr().err
