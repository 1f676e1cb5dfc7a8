"""The synthesised corpora's word lists: no word a benchmark scores is trained on."""

from __future__ import annotations

from conftest import REPO, SHARED_DATA, _shared, load_experiment_script

WORDS = REPO / "experiments" / "words"


def _words(name: str) -> set[str]:
    return {w.strip().lower() for w in (WORDS / name).read_text().splitlines()
            if w.strip() and not w.startswith("#")}


def test_the_heads_dictionary_words_are_no_benchmarks_words_and_drawn_as_their_header_says():
    _shared("speechocean762")
    _shared("picovoice")
    script = load_experiment_script("words/cmudict_words")
    drawn = _words("cmudict1500.txt")
    assert len(drawn) == 1500
    left_out = script.excluded(SHARED_DATA)
    assert {"yes", "seven", "alexa", "mirror", "likes"} <= left_out  # each source of the rule
    assert not drawn & left_out
    assert not drawn & _words("large.txt")


def test_the_dictionary_draw_is_seeded_and_written_whole(tmp_path):
    _shared("speechocean762")
    _shared("picovoice")
    script = load_experiment_script("words/cmudict_words")
    out = tmp_path / "w.txt"
    assert script.main([str(SHARED_DATA), "--count", "1500", "--seed", "0", "--out", str(out)]) == 0
    assert out.read_text() == (WORDS / "cmudict1500.txt").read_text()
    other = tmp_path / "b.txt"
    script.main([str(SHARED_DATA), "--count", "200", "--seed", "1", "--out", str(other),
                 "--skip", str(out)])
    more = {w for w in other.read_text().splitlines() if w and not w.startswith("#")}
    assert len(more) == 200 and not more & _words("cmudict1500.txt")
