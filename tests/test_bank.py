"""kws_proto.spot.bank: the keyword bank round-trips exactly and refuses damaged or tampered files."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from kws_proto.spot.bank import EncoderInfo, KeywordBank, load_bank, save_bank
from kws_proto.errors import BankError, ConfigError
from kws_proto.audio.features import FeatureConfig

D = 8


def _bank(seed: int = 0) -> KeywordBank:
    rng = np.random.default_rng(seed)
    enc = EncoderInfo(model="/runs/x", fingerprint="ab" * 32, encoder="protores",
                      distance="euclidean", embedding_dim=D, spec=None)
    bank = KeywordBank(enc, FeatureConfig(hop_ms=10.0))
    for name, k in (("jarvis", 5), ("smart mirror", 3)):
        support = rng.normal(size=(k, D)).astype(np.float32)
        bank.add(bank.make_keyword(name, support, [f"{name}_{i}.wav" for i in range(k)],
                                   threshold=1.5 + k, calibration={"rule": "test", "loo": [1.0]}))
    return bank


def test_round_trip_keeps_every_field(tmp_path):
    bank = _bank()
    path = save_bank(bank, tmp_path / "b.npz")
    again = load_bank(path)
    assert again.names == ["jarvis", "smart mirror"]
    assert again.encoder == bank.encoder and again.features == bank.features
    np.testing.assert_array_equal(again.prototypes, bank.prototypes)
    np.testing.assert_array_equal(again.thresholds, bank.thresholds)
    for a, b in zip(again.keywords, bank.keywords):
        np.testing.assert_array_equal(a.support, b.support)
        assert a.clips == b.clips and a.calibration == b.calibration
    # the prototype is the support mean
    expected = bank["jarvis"].support.astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(again["jarvis"].prototype, expected, rtol=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == ["b.npz"]  # no temporary file left behind


def test_add_replace_remove(tmp_path):
    bank = _bank()
    new = bank.make_keyword("jarvis", np.ones((2, D)), ["a.wav", "b.wav"], threshold=0.5)
    with pytest.raises(BankError, match="'jarvis' is already in the bank"):
        bank.add(new)
    bank.add(new, replace=True)
    assert bank.names == ["jarvis", "smart mirror"] and bank["jarvis"].clips == ("a.wav", "b.wav")
    bank.remove("smart mirror")
    with pytest.raises(BankError, match="'smart mirror' is not in the bank .*jarvis"):
        bank.remove("smart mirror")
    assert load_bank(save_bank(bank, tmp_path / "b.npz")).names == ["jarvis"]
    with pytest.raises(ConfigError, match="'unknown'"):
        bank.add(bank.make_keyword("unknown", np.ones((2, D)), ["a", "b"], 1.0))
    with pytest.raises(BankError, match="does not match 3 clips"):
        bank.add(bank.make_keyword("x", np.ones((2, D)), ["a", "b", "c"], 1.0))


def test_empty_bank_round_trips(tmp_path):
    bank = KeywordBank(_bank().encoder, FeatureConfig())
    again = load_bank(save_bank(bank, tmp_path / "empty.npz"))
    assert len(again) == 0 and again.prototypes.shape == (0, D)


def test_missing_truncated_and_foreign_files_are_refused(tmp_path):
    with pytest.raises(BankError, match="no such keyword bank"):
        load_bank(tmp_path / "nope.npz")
    path = save_bank(_bank(), tmp_path / "b.npz")
    data = path.read_bytes()
    for cut in (10, len(data) // 2, len(data) - 30):
        (tmp_path / "cut.npz").write_bytes(data[:cut])
        with pytest.raises(BankError, match="cut.npz"):
            load_bank(tmp_path / "cut.npz")
    (tmp_path / "text.npz").write_text("not a bank")
    with pytest.raises(BankError, match="text.npz"):
        load_bank(tmp_path / "text.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(BankError, match="not a keyword bank .*header"):
        load_bank(tmp_path / "other.npz")


def _rewrite(path, out, **changes):
    """Copy of the bank at ``path`` with some members replaced (checksum left as it was)."""
    with np.load(path) as z:
        members = {k: z[k] for k in z.files}
    members.update(changes)
    np.savez(out, **members)
    return out


def test_tampered_arrays_or_header_are_refused(tmp_path):
    path = save_bank(_bank(), tmp_path / "b.npz")
    with np.load(path) as z:
        protos, header = z["prototypes"].copy(), json.loads(z["header"].tobytes())
    protos[0, 0] += 1e-3
    with pytest.raises(BankError, match="checksum mismatch"):
        load_bank(_rewrite(path, tmp_path / "p.npz", prototypes=protos))
    header["keywords"][0]["threshold"] = 1e9  # accept everything
    raw = np.frombuffer(json.dumps(header).encode(), np.uint8)
    with pytest.raises(BankError, match="checksum mismatch"):
        load_bank(_rewrite(path, tmp_path / "h.npz", header=raw))
    # a flipped byte inside the stored (uncompressed) support array
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("support.npy")
    data = bytearray(path.read_bytes())
    data[info.header_offset + 200] ^= 0xFF
    (tmp_path / "flip.npz").write_bytes(bytes(data))
    with pytest.raises(BankError, match="flip.npz"):
        load_bank(tmp_path / "flip.npz")


def test_pickled_members_are_never_loaded(tmp_path):
    path = save_bank(_bank(), tmp_path / "b.npz")
    evil = np.array([{"a": 1}], dtype=object)
    with pytest.raises(BankError, match="evil.npz"):
        load_bank(_rewrite(path, tmp_path / "evil.npz", support=evil))


def test_other_version_is_refused(tmp_path):
    bank = _bank()
    header = bank.header()
    header["version"] = 99
    bank.header = lambda: header  # a bank from a future release
    with pytest.raises(BankError, match="version 99"):
        load_bank(save_bank(bank, tmp_path / "v.npz"))
