"""kws_proto.audio.loading: every failure is an AudioError naming the file; rates, channels and crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from kws_proto.audio.loading import fix_length, load_audio, read_audio
from kws_proto.errors import AudioError, ConfigError

DATA = Path(__file__).parent / "data"


def tone(freq: float, sr: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(sr * seconds))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(y: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return float(np.fft.rfftfreq(len(y), 1 / sr)[np.argmax(spectrum)])


# -- error cases -------------------------------------------------------------------------------
def _missing(d: Path) -> Path:
    return d / "missing.wav"


def _directory(d: Path) -> Path:
    (d / "folder.wav").mkdir()
    return d / "folder.wav"


def _text(d: Path) -> Path:
    (d / "notes.wav").write_text("not audio at all\n" * 20)
    return d / "notes.wav"


def _garbage(d: Path) -> Path:
    (d / "garbage.wav").write_bytes(b"RIFF" + np.random.default_rng(0).bytes(4000))
    return d / "garbage.wav"


def _truncated_flac(d: Path) -> Path:
    sf.write(d / "whole.flac", tone(440, 16000, 1.0), 16000)
    data = (d / "whole.flac").read_bytes()
    (d / "truncated.flac").write_bytes(data[: len(data) // 2])
    return d / "truncated.flac"


def _empty_wav(d: Path) -> Path:
    sf.write(d / "empty.wav", np.zeros(0, np.float32), 16000)
    return d / "empty.wav"


def _zero_byte_file(d: Path) -> Path:
    (d / "zero.wav").write_bytes(b"")
    return d / "zero.wav"


def _nan_wav(d: Path) -> Path:
    y = tone(440, 16000, 0.5)
    y[1000] = np.nan
    sf.write(d / "nan.wav", y, 16000, subtype="FLOAT")
    return d / "nan.wav"


def _inf_wav(d: Path) -> Path:
    y = tone(440, 16000, 0.5)
    y[-1] = np.inf
    sf.write(d / "inf.wav", y, 16000, subtype="FLOAT")
    return d / "inf.wav"


BAD_FILES = [
    (_missing, "no such file"),
    (_directory, "directory"),
    (_text, "unreadable"),
    (_garbage, "unreadable"),
    (_truncated_flac, "corrupt"),
    (_empty_wav, "empty"),
    (_zero_byte_file, "unreadable"),
    (_nan_wav, "non-finite"),
    (_inf_wav, "non-finite"),
]


@pytest.mark.parametrize("make, cause", BAD_FILES, ids=[m.__name__[1:] for m, _ in BAD_FILES])
def test_bad_file_is_an_audio_error_naming_it(tmp_path, make, cause):
    path = make(tmp_path)
    for load in (read_audio, load_audio):
        with pytest.raises(AudioError, match=cause) as err:
            load(path)
        assert str(path) in str(err.value)


@pytest.mark.shared
def test_corrupt_flac_of_the_real_corpus(picovoice_dir):
    path = picovoice_dir / "alexa" / "126.flac"
    with pytest.raises(AudioError, match="corrupt") as err:
        load_audio(path, crop="loudest")
    assert "126.flac" in str(err.value)


@pytest.mark.parametrize("value, field", [({"duration": 0}, "duration"),
                                          ({"crop": "middle"}, "crop"), ({"sr": 0}, "sr")])
def test_bad_arguments_are_config_errors_naming_them(value, field):
    with pytest.raises(ConfigError, match=field):
        load_audio(DATA / "fsdd" / "1_jackson_0.wav", **value)


# -- rates and channels --------------------------------------------------------------------------
@pytest.mark.parametrize("file_sr, freq", [(8000, 1000.0), (44100, 3000.0), (16000, 440.0)])
def test_resampling_keeps_length_and_pitch(tmp_path, file_sr, freq):
    path = tmp_path / f"tone_{file_sr}.wav"
    sf.write(path, tone(freq, file_sr, 0.5), file_sr, subtype="FLOAT")
    y = read_audio(path, sr=16000)
    assert y.dtype == np.float32
    assert y.shape == (8000,)  # 0.5 s at 16 kHz
    assert abs(peak_hz(y, 16000) - freq) <= 2.0  # FFT bins are 2 Hz apart
    assert 0.45 < np.max(np.abs(y[1000:-1000])) < 0.55  # amplitude kept away from the edges


def test_real_8khz_clip_is_resampled_to_16khz():
    path = DATA / "fsdd" / "1_jackson_0.wav"
    native = sf.info(path)
    y = read_audio(path, sr=16000)
    assert y.shape == (round(native.frames * 16000 / native.samplerate),)
    assert np.all(np.isfinite(y)) and np.max(np.abs(y)) > 0.05


def test_stereo_is_averaged_to_mono(tmp_path):
    left, right = tone(440, 16000, 0.5, 0.6), tone(1500, 16000, 0.5, 0.2)
    sf.write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    y = read_audio(tmp_path / "stereo.wav", sr=16000)
    np.testing.assert_allclose(y, (left + right) / 2, atol=1e-6)


# -- fixed length ------------------------------------------------------------------------------
@pytest.fixture
def late_burst(tmp_path):
    """3 s of quiet noise with a loud 0.3 s burst at 2.4-2.7 s: ``(path, samples, burst)``."""
    sr = 16000
    y = 0.001 * np.random.default_rng(0).standard_normal(3 * sr).astype(np.float32)
    burst = slice(int(2.4 * sr), int(2.7 * sr))
    y[burst] += tone(800, sr, 0.3, 0.5)
    sf.write(tmp_path / "late.wav", y, sr, subtype="FLOAT")
    return tmp_path / "late.wav", y, burst


def _offset(out: np.ndarray, y: np.ndarray) -> int:
    """Where ``out`` sits in ``y`` (asserting it is one contiguous slice)."""
    starts = np.flatnonzero(y[: len(y) - len(out) + 1] == out[0])
    found = [s for s in starts if np.array_equal(y[s : s + len(out)], out)]
    assert len(found) == 1
    return found[0]


def test_loudest_crop_keeps_the_late_burst(late_burst):
    path, y, burst = late_burst
    out = load_audio(path, sr=16000, duration=1.0, crop="loudest")
    assert out.shape == (16000,)
    start = _offset(out, y)
    assert start <= burst.start and burst.stop <= start + 16000


@pytest.mark.parametrize("crop, start", [("center", 16000), ("start", 0)])
def test_center_and_start_crops(late_burst, crop, start):
    path, y, _ = late_burst
    out = load_audio(path, sr=16000, duration=1.0, crop=crop)
    np.testing.assert_array_equal(out, y[start : start + 16000])
    assert np.max(np.abs(out)) < 0.01  # neither window reaches the burst


@pytest.mark.parametrize("crop, left", [("center", 4000), ("loudest", 4000), ("start", 0)])
def test_short_clip_is_zero_padded(tmp_path, crop, left):
    y = tone(440, 16000, 0.5)
    sf.write(tmp_path / "short.wav", y, 16000, subtype="FLOAT")
    out = load_audio(tmp_path / "short.wav", sr=16000, duration=1.0, crop=crop)
    assert out.shape == (16000,)
    np.testing.assert_array_equal(out[left : left + 8000], y)
    assert not out[:left].any() and not out[left + 8000 :].any()


def test_fix_length_keeps_exact_length_clips():
    y = np.arange(100, dtype=np.float32)
    for crop in ("center", "loudest", "start"):
        np.testing.assert_array_equal(fix_length(y, 100, crop=crop), y)


def test_crop_start_and_window_at_reproduce_every_crop(late_burst):
    from kws_proto.audio.loading import crop_start, window_at

    _, y, _ = late_burst
    short = tone(440, 16000, 0.5)
    for signal in (y, short, y[:16000]):
        for crop in ("center", "loudest", "start"):
            start = crop_start(signal, 16000, crop)
            np.testing.assert_array_equal(window_at(signal, start, 16000),
                                          fix_length(signal, 16000, crop=crop))
    assert crop_start(short, 16000, "center") == -4000  # centred: 4,000 zeros before it
    v = window_at(short, -12000, 16000)  # leaves the clip on the left: zeros, then its start
    assert not v[:12000].any()
    np.testing.assert_array_equal(v[12000:], short[:4000])
    v = window_at(short, 6000, 16000)  # and on the right
    np.testing.assert_array_equal(v[:2000], short[6000:])
    assert not v[2000:].any()
    assert not window_at(short, 9000, 16000).any()  # wholly outside
    with pytest.raises(ConfigError, match="crop='middle'"):
        crop_start(y, 16000, "middle")
