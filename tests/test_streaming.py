"""StreamingSpotter: chunks of any size give the offline detector's events, with bounded memory;
raw PCM on stdin for `kws-proto detect -`, and its refusals."""

from __future__ import annotations

import io
import json
import sys

import numpy as np
import pytest
import soundfile as sf

from conftest import REPO
from kws_proto.audio.pcm import read_pcm16
from kws_proto.cli import main
from kws_proto.errors import AudioError, KwsError
from kws_proto.spot.streaming import StreamingSpotter, detect_chunks

TEST_DATA = REPO / "tests" / "data"


@pytest.fixture(scope="module")
def bank(keyword_spotter, keyword_clips):
    b = keyword_spotter.new_bank()
    for name, paths in keyword_clips["keywords"].items():
        keyword_spotter.enroll(b, name, paths[:5])
    return b


@pytest.fixture(scope="module")
def recording(keyword_spotter, picovoice_dir):
    """Picovoice's 45 s recording of several wake words (computer at ~17 s among them)."""
    from kws_proto.audio.loading import read_audio

    return read_audio(picovoice_dir / "multiple_keywords.flac", keyword_spotter.features.sample_rate)


def _chunks(y, rng, high):
    out, i = [], 0
    while i < len(y):
        n = int(rng.integers(1, high))
        out.append(y[i:i + n])
        i += n
    return out


def _same_events(streamed, offline):
    """Identical keywords, starts, ends and peaks; scores to float round-off of the batching."""
    key = lambda e: (e.keyword, round(e.start, 6), round(e.end, 6), round(e.peak, 6))  # noqa: E731
    assert [key(e) for e in streamed] == [key(e) for e in offline]
    for s, o in zip(streamed, offline):
        assert s.score == pytest.approx(o.score, abs=1e-4)
        assert s.distance == pytest.approx(o.distance, rel=1e-4)


@pytest.mark.parametrize("high", [20000, 4000])
def test_random_chunks_give_the_offline_events(keyword_spotter, bank, recording, high):
    offline = keyword_spotter.detect(bank, recording)
    assert offline.events, "the recording should hold at least one enrolled keyword"
    stream = StreamingSpotter(keyword_spotter, bank)
    window, released = stream.window, []
    for chunk in _chunks(recording, np.random.default_rng(high), high):
        for e in stream.push(chunk):
            # final only once no later window can change it (the documented latency)
            assert stream.duration >= e.end + stream.spotter.features.clip_seconds - 1e-9
            released.append(e)
        assert len(stream._buffer) < window  # less than one window held between calls
    released += stream.flush()
    _same_events(released, offline.events)
    assert stream.windows == offline.windows
    assert stream.duration == pytest.approx(offline.duration)


@pytest.mark.parametrize("seconds", [0.3, 1.0, 1.05, 2.6])
def test_short_audio_and_the_padded_tail_match_offline(keyword_spotter, bank, seconds):
    """Audio shorter than a window, exactly one, and tails that need a padded last window."""
    y, sr = sf.read(next((TEST_DATA / "picovoice" / "computer").glob("*.flac")), dtype="float32")
    assert sr == keyword_spotter.features.sample_rate
    y = np.resize(y, int(round(seconds * sr)))
    offline = keyword_spotter.detect(bank, y, min_hits=1)
    stream = StreamingSpotter(keyword_spotter, bank, min_hits=1)
    det = detect_chunks(stream, _chunks(y, np.random.default_rng(1), 3000))
    _same_events(det.events, offline.events)
    assert det.windows == offline.windows


def test_push_refuses_bad_chunks_and_pushes_after_the_end(keyword_spotter, bank):
    stream = StreamingSpotter(keyword_spotter, bank)
    with pytest.raises(AudioError, match="shape"):
        stream.push(np.zeros((2, 100), np.float32))
    with pytest.raises(AudioError, match="non-finite"):
        stream.push(np.array([0.0, np.nan], np.float32))
    assert stream.flush() == [] and stream.windows == 0  # no audio: no window, no event
    with pytest.raises(KwsError, match="flushed"):
        stream.push(np.zeros(10, np.float32))
    with pytest.raises(KwsError, match="hop=0"):
        StreamingSpotter(keyword_spotter, bank, hop=0)


def _pcm(y) -> bytes:
    return (np.clip(y, -1, 32767 / 32768) * 32768).astype("<i2").tobytes()


def test_pcm_reader_chunks_and_refusals():
    y = (np.arange(1000) % 200 - 100).astype(np.float32) / 128
    got = np.concatenate(list(read_pcm16(io.BytesIO(_pcm(y)), chunk_samples=333)))
    np.testing.assert_allclose(got, y, atol=1 / 32768)
    wav = io.BytesIO()
    sf.write(wav, y, 16000, format="WAV", subtype="PCM_16")
    with pytest.raises(AudioError, match="'RIFF'.*WAV"):
        list(read_pcm16(io.BytesIO(wav.getvalue())))
    with pytest.raises(AudioError, match="1001 bytes, an odd number"):
        list(read_pcm16(io.BytesIO(b"\x01" * 1001), chunk_samples=100))
    with pytest.raises(AudioError, match="0 bytes"):
        list(read_pcm16(io.BytesIO(b"")))


def _stdin(monkeypatch, data: bytes):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def test_cli_detect_reads_raw_pcm_from_stdin(keyword_spotter, bank, recording, tmp_path,
                                             monkeypatch, capsys):
    from kws_proto.spot.bank import save_bank

    path = save_bank(bank, tmp_path / "b.npz")
    pcm = _pcm(recording)
    offline = keyword_spotter.detect(bank, np.frombuffer(pcm, "<i2").astype(np.float32) / 32768)
    _stdin(monkeypatch, pcm)
    assert main(["detect", str(path), "-", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["path"] == "-" and out["windows"] == offline.windows
    assert [(e["keyword"], e["start"], e["end"]) for e in out["events"]] == [
        (e.keyword, round(e.start, 4), round(e.end, 4)) for e in offline.events]
    _stdin(monkeypatch, pcm)
    assert main(["detect", str(path), "-"]) == 0
    text = capsys.readouterr().out
    assert text.count(" score ") == len(offline.events) and "real-time factor" in text
    wav = tmp_path / "r.wav"
    sf.write(wav, recording[:16000], 16000, subtype="PCM_16")
    _stdin(monkeypatch, wav.read_bytes())
    assert main(["detect", str(path), "-"]) == 2
    assert "'RIFF'" in capsys.readouterr().err
    _stdin(monkeypatch, pcm[:3201])
    assert main(["detect", str(path), "-"]) == 2
    assert "odd number" in capsys.readouterr().err


def test_a_bank_of_twins_in_context_streams_as_it_detects(keyword_spotter, keyword_clips,
                                                          recording):
    names = list(keyword_clips["keywords"])
    background = keyword_spotter.background(keyword_clips["unknown"][:10], join=True)
    twins = keyword_spotter.new_bank()
    for name in names:
        others = [p for n in names if n != name for p in keyword_clips["keywords"][n][10:14]]
        keyword_spotter.enroll(twins, name, keyword_clips["keywords"][name][:5], norm="snorm",
                               background=background, context=2, neighbours=others)
    assert all(t is not None for t in twins.twins)
    offline = keyword_spotter.detect(twins, recording)
    assert offline.events, "the recording should hold at least one enrolled keyword"
    stream = StreamingSpotter(keyword_spotter, twins)
    released = [e for c in _chunks(recording, np.random.default_rng(3), 8000) for e in stream.push(c)]
    _same_events(released + stream.flush(), offline.events)
