"""`kws-prep words`: transcript readers, PocketSphinx alignment, the keyword folder it writes.

Speech is real (speechocean762 sentences of ../shared/data) when present, else eSpeak NG sentences
with 0.3 s of silence either side; the readers need no audio at all.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import soxr

from conftest import REPO, SHARED_DATA
from data_prep.wav import write_wav
from data_prep.words_corpus.agreement import agreement, read_alignments
from data_prep.commands.words import FORMATS as CLI_FORMATS
from data_prep.words_corpus.transcripts import FORMATS, detect_format, read_transcripts, words_of
from kws_proto.data.dataset import load_manifest, load_splits
from kws_proto.errors import ConfigError, DatasetError, KwsError

pytest.importorskip("pocketsphinx", reason="the align extra (pocketsphinx) is not installed")

from data_prep.words_corpus.align import AlignmentError, Aligner, read_lexicon  # noqa: E402
from data_prep.words_corpus.build import WordOptions, build_words_corpus  # noqa: E402

UTTERANCES = SHARED_DATA / "speechocean762" / "utterances"
#: (utterance, speaker, transcript) of speechocean762 sentences; eSpeak says them when it is absent
SENTENCES = [("000530003", "0053", "mike likes the orange one"),
             ("000530006", "0053", "ann can we have the peach"),
             ("000530027", "0053", "three three nine"),
             ("011090089", "1109", "drink a lot of water")]


def _speech(uid: str, speaker: str, text: str) -> np.ndarray:
    """The sentence at 16 kHz: the real recording, else eSpeak NG padded with 0.3 s of silence."""
    real = UTTERANCES / speaker / f"{uid}.flac"
    if real.is_file():
        return sf.read(str(real), dtype="float32")[0]
    from data_prep.espeak import Voice, get_synthesizer

    synth = get_synthesizer()
    voice = Voice("en-us", "m3") if speaker == "0053" else Voice("en-gb", "f2")
    pcm = synth.synthesize(text, voice, seed=0)  # [m] int16 at synth.sample_rate
    y = soxr.resample(pcm.astype(np.float32) / 32768.0, synth.sample_rate, 16000)
    gap = np.zeros(4800, np.float32)
    return np.concatenate([gap, y, gap])


@pytest.fixture(scope="module")
def speech_dir(tmp_path_factory):
    """``audio/<utterance>.wav`` of every sentence of :data:`SENTENCES`."""
    root = tmp_path_factory.mktemp("speech")
    (root / "audio").mkdir()
    for uid, speaker, text in SENTENCES:
        write_wav(root / "audio" / f"{uid}.wav", _speech(uid, speaker, text), 16000)
    return root


def _tsv(path, rows, columns=("path", "text", "speaker")):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(columns)
        w.writerows(rows)
    return path


@pytest.fixture
def corpus(speech_dir, tmp_path):
    """A TSV of the sentences plus three bad rows: corrupt audio, no speaker, an unknown word."""
    src = tmp_path / "src"
    shutil.copytree(speech_dir / "audio", src / "audio")
    (src / "audio" / "broken.wav").write_bytes(b"RIFF not really a wav")
    rows = [(f"audio/{u}.wav", t, s) for u, s, t in SENTENCES]
    rows += [("audio/broken.wav", "mike likes the orange one", "0053"),
             (f"audio/{SENTENCES[0][0]}.wav", SENTENCES[0][2], ""),
             (f"audio/{SENTENCES[1][0]}.wav", "ann can we have the zorblaxet", "0053")]
    return _tsv(src / "corpus.tsv", rows)


@pytest.mark.parametrize("text, words", [
    ("Mike likes the ORANGE one.", ["mike", "likes", "the", "orange", "one"]),
    ("There's a way -- isn't it?", ["there's", "a", "way", "isn't", "it"]),
    ("the dogs' bone, \u2018quoted\u2019", ["the", "dogs", "bone", "quoted"]),
])
def test_words_of_lowercases_and_keeps_inner_apostrophes(text, words):
    assert words_of(text) == words


def test_tsv_paths_are_relative_to_the_file_and_a_row_without_speaker_is_skipped(tmp_path):
    _tsv(tmp_path / "a.tsv", [("x/1.wav", "hello world", "ann"), ("x/2.wav", "bye", "")])
    utts, skipped = read_transcripts(tmp_path / "a.tsv")
    assert [(u.audio, u.text, u.speaker) for u in utts] == [(tmp_path / "x/1.wav", "hello world", "ann")]
    assert [(s.path, s.reason) for s in skipped] == [("x/2.wav", "no speaker")]


def test_kaldi_folder_reads_text_wav_scp_and_utt2spk(tmp_path):
    (tmp_path / "text").write_text("u1 HELLO WORLD\nu2 GOOD BYE\nu3 PIPED ONE\n")
    (tmp_path / "wav.scp").write_text("u1 wav/u1.wav\nu2 /abs/u2.flac\nu3 sox in.wav -t wav - |\n")
    (tmp_path / "utt2spk").write_text("u1 spk1\nu3 spk1\n")
    assert detect_format(tmp_path) == "kaldi"
    utts, skipped = read_transcripts(tmp_path)
    assert [(u.id, u.audio, u.speaker) for u in utts] == [("u1", tmp_path / "wav/u1.wav", "spk1")]
    assert {s.path: s.reason for s in skipped} == {"u2": "no speaker",
                                                   "u3": "wav.scp gives a command, not a file"}


def test_librispeech_speaker_comes_from_the_folder(tmp_path):
    chapter = tmp_path / "train" / "103" / "1240"
    chapter.mkdir(parents=True)
    (chapter / "103-1240.trans.txt").write_text("103-1240-0000 CHAPTER ONE\n103-1240-0001 MISSUS RACHEL\n")
    assert detect_format(tmp_path) == "librispeech"
    utts, skipped = read_transcripts(tmp_path)
    assert [(u.id, u.audio.name, u.speaker, u.text) for u in utts] == [
        ("103-1240-0000", "103-1240-0000.flac", "103", "CHAPTER ONE"),
        ("103-1240-0001", "103-1240-0001.flac", "103", "MISSUS RACHEL")]
    assert skipped == []


def test_common_voice_reads_validated_tsv_with_clips_beside_it(tmp_path):
    (tmp_path / "clips").mkdir()
    cols = ("client_id", "path", "sentence", "up_votes")
    _tsv(tmp_path / "validated.tsv", [("c1", "a.mp3", "Hello there.", "2"), ("", "b.mp3", "Hi", "2")], cols)
    _tsv(tmp_path / "invalidated.tsv", [("c2", "z.mp3", "not read", "0")], cols)
    assert detect_format(tmp_path) == detect_format(tmp_path / "validated.tsv") == "commonvoice"
    utts, skipped = read_transcripts(tmp_path)
    assert [(u.audio, u.speaker, u.text) for u in utts] == [(tmp_path / "clips/a.mp3", "c1", "Hello there.")]
    assert [(s.path, s.reason) for s in skipped] == [("b.mp3", "no speaker")]


def test_an_unknown_layout_is_named(tmp_path):
    assert CLI_FORMATS == ("auto", *FORMATS)  # the command lists them without importing the readers
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(ConfigError, match="not a known layout"):
        read_transcripts(tmp_path)
    with pytest.raises(ConfigError, match="columns path, text, speaker"):
        read_transcripts(_tsv(tmp_path / "x.tsv", [("a", "b")], ("file", "words")))


def test_lexicon_supplies_missing_words_and_rejects_a_line_without_phones(tmp_path):
    lex = tmp_path / "lex.txt"
    lex.write_text(";;; comment\nZORBLAXET  Z AO R B L AE K S EH T\nZORBLAXET(2) Z AO R\n")
    assert read_lexicon(lex) == {"zorblaxet": "Z AO R B L AE K S EH T"}
    assert Aligner().missing(["ann", "zorblaxet", "zorblaxet"]) == ["zorblaxet"]
    assert Aligner(read_lexicon(lex)).missing(["ann", "zorblaxet"]) == []
    lex.write_text("LONELY\n")
    with pytest.raises(ConfigError, match="has no phones"):
        read_lexicon(lex)


def test_a_missing_pocketsphinx_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pocketsphinx", None)  # `import pocketsphinx` raises ImportError
    with pytest.raises(KwsError, match=r"kws_proto\[align\]"):
        Aligner()


def test_alignment_gives_every_word_in_order_inside_the_recording(speech_dir):
    aligner = Aligner()
    for uid, _, text in SENTENCES:
        y = sf.read(str(speech_dir / "audio" / f"{uid}.wav"), dtype="float32")[0]
        timings = aligner.align(y, text.split())
        assert [t.word for t in timings] == text.split()
        bounds = np.array([(t.start, t.end) for t in timings])  # [words, 2]
        assert np.all(bounds[:, 1] > bounds[:, 0])
        assert np.all(bounds[1:, 0] >= bounds[:-1, 1] - 1e-9)
        assert bounds[-1, 1] <= y.shape[0] / 16000 + 0.01
    with pytest.raises(AlignmentError, match="covers only"):
        aligner.align(y[:8000], "zebra crossing elephant".split())


def test_build_writes_a_dataset_folder_and_reports_every_bad_utterance(corpus, tmp_path):
    out = tmp_path / "out"
    report = build_words_corpus(corpus, out, options=WordOptions(pad_ms=50), progress=False)
    c = report["counts"]
    assert (c["utterances"], c["aligned"], c["skipped"]) == (7, 4, 3)
    assert c["skipped_by_reason"] == {"no speaker": 1, "not in the dictionary": 1, "unusable audio": 1}
    assert {s["utterance"] for s in report["skipped"]} == {"audio/broken.wav", "audio/000530003.wav",
                                                          "audio/000530006.wav"}
    m = load_manifest(out)
    n_words = sum(len(t.split()) for *_, t in SENTENCES)
    assert len(m) == c["clips"] == c["aligned_words"] - c["unusable_clips"] == n_words
    assert set(m.keywords) == {w for *_, t in SENTENCES for w in t.split()}
    assert load_splits(out).test == tuple(m.keywords)
    assert {c.speaker for c in m.clips} == {"0053", "1109"}
    rows = read_alignments(out / "alignments.tsv")
    assert sum(map(len, rows.values())) == n_words
    lengths: dict[str, list[float]] = {}
    for words in rows.values():
        for word, start, end in words:
            lengths.setdefault(word, []).append(end - start)
    for kw, idx in m.indices_by_keyword().items():  # each clip: its word and 50 ms either side
        d = np.sort([m.clips[i].duration for i in idx])  # (or less at the recording's edge)
        n = np.sort(lengths[kw])
        assert np.all(d >= n - 1e-6) and np.all(d <= n + 0.1 + 1e-6), kw
    assert all(sf.info(str(p)).samplerate == 16000 for p in m.paths())
    assert json.loads((out / "report.json").read_text())["counts"] == c


def test_options_choose_words_and_cap_clips(corpus, tmp_path):
    opts = WordOptions(min_clips=2, exclude=frozenset({"the"}))
    report = build_words_corpus(corpus, tmp_path / "a", options=opts, progress=False)
    assert load_manifest(tmp_path / "a").keywords == ["three"]  # the only other word said twice
    assert report["words_dropped"]["the"] == "excluded"
    assert report["words_dropped"]["mike"] == "fewer than 2 clips: 1"
    for cap, clips in ((0, {"nine": 1, "three": 2}), (1, {"nine": 1, "three": 1})):
        opts = WordOptions(keep=frozenset({"three", "nine"}), max_per_speaker=cap)
        c = build_words_corpus(corpus, tmp_path / f"b{cap}", options=opts, progress=False)["counts"]
        assert c["clips_per_keyword"] == clips
        assert c["words_dropped_by_reason"] == {"not in --words": c["words_dropped"]}


def test_nothing_usable_fails_with_the_reasons_and_leaves_the_report(corpus, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(DatasetError, match="no usable clip .*not in the dictionary"):
        build_words_corpus(corpus, out, options=WordOptions(keep=frozenset({"zorblaxet"})), progress=False)
    assert json.loads((out / "report.json").read_text())["counts"]["clips"] == 0
    assert not (out / "manifest.csv").exists()


def test_the_command_line_builds_with_a_lexicon(corpus, tmp_path):
    lex = tmp_path / "lex.txt"
    lex.write_text("ZORBLAXET Z AO R B L AE K S EH T\n")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "data_prep.cli", "words", str(corpus), str(out),
                           "--lexicon", str(lex), "--words", "peach,ann", "--quiet"],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert "not in the dictionary" not in report["counts"]["skipped_by_reason"]
    assert set(load_manifest(out).keywords) <= {"peach", "ann"}
    assert "skipped audio/broken.wav: unusable audio" in proc.stdout


@pytest.mark.shared
def test_boundaries_agree_with_speechocean762_alignments(tmp_path):
    """Start and end of >= 90 % of words within 50 ms of the corpus's alignments.tsv (40 sentences;
    the 400 are in experiments/words.md)."""
    if not (UTTERANCES / "text.tsv").is_file():
        pytest.skip(f"real speech not available: {UTTERANCES} is absent (set KWS_SHARED_DATA)")
    with open(UTTERANCES / "text.tsv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))[::10]  # 40 sentences of all 20 speakers
    tsv = _tsv(tmp_path / "so.tsv", [(r["utterance"], str(UTTERANCES / r["speaker"] / f"{r['utterance']}.flac"),
                                      r["text"], r["speaker"]) for r in rows],
               ("utterance", "path", "text", "speaker"))
    build_words_corpus(tsv, tmp_path / "out", progress=False)
    ours = read_alignments(tmp_path / "out" / "alignments.tsv")
    reference = {u: v for u, v in read_alignments(UTTERANCES / "alignments.tsv").items()
                 if u in {r["utterance"] for r in rows}}
    a = agreement(ours, reference, tolerance=0.05)
    assert a["utterances"] >= 36 and a["different_words"] == []
    assert a["start_within"] >= 0.9 and a["end_within"] >= 0.9, a
