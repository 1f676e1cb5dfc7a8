"""Few-shot class splits: partitions, seeds, explicit lists, Speech Commands protocols, the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from data_prep.cli import main as prep_main
from data_prep.splits import (
    core_split, explicit_split, parnami_split, random_split, speakers_per_keyword, all_test_split,
)
from data_prep.words import CORE_WORDS, SPEECH_COMMANDS_V2
from kws_proto.data.dataset import Clip, Manifest, load_splits, write_manifest
from kws_proto.errors import ConfigError, DatasetError

WORDS = [f"word{i:02d}" for i in range(30)]


def _all(s) -> list[str]:
    return list(s.train + s.validation + s.test + s.unknown)


@pytest.mark.parametrize("n_val, n_test, n_train", [(5, 5, None), (3, 7, 10), (0, 30, None), (1, 1, 0)])
def test_random_split_is_a_partition_with_the_asked_sizes(n_val, n_test, n_train):
    s = random_split(WORDS, n_val, n_test, n_train, seed=3)
    assert sorted(_all(s)) == sorted(WORDS) and len(_all(s)) == len(set(_all(s)))
    assert (len(s.validation), len(s.test)) == (n_val, n_test)
    assert len(s.train) == (30 - n_val - n_test if n_train is None else n_train)
    assert s.protocol == "random" and s.seed == 3


def test_random_split_follows_the_seed_not_the_input_order():
    a = random_split(WORDS, 5, 5, seed=1)
    assert random_split(list(reversed(WORDS)), 5, 5, seed=1) == a
    assert random_split(WORDS, 5, 5, seed=2).test != a.test


def test_random_split_refuses_impossible_sizes():
    with pytest.raises(DatasetError, match="30 keywords"):
        random_split(WORDS, 20, 20)
    with pytest.raises(ConfigError, match="-1"):
        random_split(WORDS, -1, 5)


def test_explicit_split_from_lists():
    s = explicit_split(WORDS, test=["word01", "word02"], validation=["word03"])
    assert s.test == ("word01", "word02") and s.validation == ("word03",)
    assert sorted(s.train) == sorted(set(WORDS) - {"word01", "word02", "word03"}) and s.unknown == ()
    s = explicit_split(WORDS, test=["word01"], train=["word05", "word06"], n_validation=4, seed=0)
    assert len(s.validation) == 4 and "word01" not in s.validation
    assert sorted(_all(s)) == sorted(WORDS) and len(s.unknown) == 30 - 1 - 2 - 4
    with pytest.raises(DatasetError, match="nope"):
        explicit_split(WORDS, test=["word01", "nope"])
    with pytest.raises(DatasetError, match="both"):
        explicit_split(WORDS, test=["word01"], validation=["word01"])


def _manifest(speakers: dict[str, int]) -> Manifest:
    clips = [Clip(f"{w}/{s:08x}_nohash_0.wav", w, f"{s:08x}") for w, n in speakers.items() for s in range(n)]
    clips.append(Clip("rare/x.wav", "rare", ""))  # a clip with no known speaker counts for nobody
    return Manifest(root=Path("."), clips=clips)


def test_parnami_split_uses_well_represented_words_and_pools_the_rest():
    counts = {w: 12 for w in WORDS[:14]} | {w: 4 for w in WORDS[14:20]}
    m = _manifest(counts)
    assert speakers_per_keyword(m)["rare"] == 0
    s = parnami_split(m, seed=0, min_speakers=10)
    assert (len(s.test), len(s.validation), len(s.train)) == (5, 5, 4)
    assert set(s.train + s.validation + s.test) == set(WORDS[:14])
    assert set(s.unknown) == set(WORDS[14:20]) | {"rare"}
    assert s.protocol == "parnami" and s.extra["min_speakers"] == 10
    with pytest.raises(DatasetError, match="min-speakers"):
        parnami_split(m, min_speakers=13)


def test_core_split_tests_on_the_command_words():
    s = core_split(SPEECH_COMMANDS_V2, seed=0)
    assert sorted(s.test) == sorted(CORE_WORDS)
    assert len(s.validation) == 5 and not set(s.validation) & set(CORE_WORDS)
    assert sorted(_all(s)) == sorted(SPEECH_COMMANDS_V2)
    with pytest.raises(DatasetError, match="stop"):
        core_split([w for w in SPEECH_COMMANDS_V2 if w != "stop"])


def test_all_test_split():
    s = all_test_split(["b", "a", "b"])
    assert s.test == ("a", "b") and s.train == () and s.protocol == "test-only"


@pytest.fixture
def dataset(tmp_path) -> Path:
    write_manifest(tmp_path, [Clip(f"{w}/a.wav", w, "spk") for w in WORDS])
    return tmp_path


def test_cli_writes_and_records_the_split(dataset, capsys):
    assert prep_main(["split", str(dataset), "--validation", "4", "--test", "6", "--seed", "9"]) == 0
    s = load_splits(dataset)
    assert (len(s.validation), len(s.test), s.seed) == (4, 6, 9)
    assert s == random_split(WORDS, 4, 6, seed=9)
    assert "random split" in capsys.readouterr().out
    assert prep_main(["split", str(dataset), "--test-words", "word07, word08", "--validation-words", "word09"]) == 0
    s = load_splits(dataset)
    assert (s.protocol, s.test, s.validation) == ("explicit", ("word07", "word08"), ("word09",))


def test_cli_errors_name_the_problem(dataset, tmp_path, capsys):
    assert prep_main(["split", str(dataset), "--test-words", "word01,ghost"]) == 2
    assert "ghost" in capsys.readouterr().err
    assert prep_main(["split", str(dataset), "--protocol", "core"]) == 2
    assert "core" in capsys.readouterr().err
    assert prep_main(["split", str(tmp_path / "nowhere")]) == 2
    assert "manifest" in capsys.readouterr().err
