"""The keyword bank: enrolled keywords, their prototypes and thresholds, in one checked file.

A bank is a single ``.npz`` file (NumPy's zip of ``.npy`` arrays) holding no pickled objects;
:func:`load_bank` reads it with ``allow_pickle=False``.  Its members::

    header      uint8 [n_bytes]       UTF-8 JSON (below)
    prototypes  float32 [n_kw, d]     one prototype per keyword, in header order
    support     float32 [n_total, d]  every keyword's support embeddings, keyword after keyword
    twins       float32 [n_twin, d]   the twin prototypes of the keywords that have one, in
                                      order (version 4 only)
    checksum    uint8 [64]            hex SHA-256 over the header and the arrays

The header::

    {"format": "kws_proto.spot.bank", "version": 1,
     "encoder": {"model": "/abs/run/dir", "spec": "default" or null, "fingerprint": "<hex>",
                 "encoder": "protores", "distance": "euclidean", "embedding_dim": d},
     "features": {...every FeatureConfig field...},
     "keywords": [{"name": str, "clips": [str, ...], "threshold": float,
                   "calibration": {...how the threshold was chosen...},
                   "score": "maxcos"   (only for a rule other than "prototype"),
                   "norm": {"method": "snorm" or "ratio", "mu": float, "sigma": float, "top": int,
                            "fingerprint": "<hex>", "digest": "<hex>", "source": str}
                           (only for a keyword normalised against a cohort),
                   "twin": {"norm": {...as above...}, "shift": float, "views": int}
                           (only for a keyword enrolled in context)}, ...]}

``support`` rows are split by the number of clips of each keyword.  Embeddings are stored as the
encoder gives them, and a prototype is the mean support embedding.  A bank of the default
scoring rule (``"prototype"``) is written as version 1, as it always was; a bank whose keywords
score by another rule (``Keyword.score``: :mod:`kws_proto.spot.decision`) as version 2, so that
a reader that knows only version 1 refuses it instead of scoring it by the wrong rule.  A bank
whose keywords are normalised against a cohort (``Keyword.norm``: :mod:`kws_proto.spot.cohort`)
is written as version 3 for the same reason; every keyword of a bank is normalised against the
same cohort by the same method, embedded by the bank's encoder, or none is.  A bank holding a
keyword enrolled in context (``Keyword.twin``: :class:`Twin`, :mod:`kws_proto.spot.context`) is
version 4, with the ``twins`` member.

A bank is written atomically (a sibling temporary file, then ``os.replace``), so a crash never
leaves half a bank.  Loading rejects, with a :class:`~kws_proto.errors.BankError` naming the
file: a missing, truncated or non-zip file, missing members, an unknown format or version, a
checksum that does not match (any edited byte of header or arrays), and inconsistent shapes.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kws_proto.errors import BankError, ConfigError
from kws_proto.audio.features import FeatureConfig
from kws_proto.spot.cohort import CohortNorm
from kws_proto.util.atomic import atomic_write_bytes
from kws_proto.util.checked_npz import checked_npz, checksum, stored_checksum

FORMAT = "kws_proto.spot.bank"
VERSION = 1  # a bank of the default scoring rule
SCORED_VERSION = 2  # keywords with a "score" entry
NORMED_VERSION = 3  # keywords with a "norm" entry
TWIN_VERSION = 4  # keywords with a "twin" entry (and the "twins" member)
PROTOTYPE, MAXCOS = "prototype", "maxcos"
SCORES = (PROTOTYPE, MAXCOS)  # the scoring rules (kws_proto.spot.decision)
MEMBERS = ("header", "prototypes", "support", "checksum")


@dataclass(frozen=True)
class EncoderInfo:
    """Which encoder made a bank's embeddings.

    ``model`` is the resolved run directory, ``spec`` the name it was given by when that was a
    shipped model (``"default"``), so a bank keeps working when the package moves.
    ``fingerprint`` is the hex SHA-256 of the encoder's weight values
    (:func:`kws_proto.spot.spotter.weights_fingerprint`).
    """

    model: str
    fingerprint: str
    encoder: str
    distance: str
    embedding_dim: int
    spec: str | None = None

    def to_dict(self) -> dict:
        return {"model": self.model, "spec": self.spec, "fingerprint": self.fingerprint,
                "encoder": self.encoder, "distance": self.distance,
                "embedding_dim": int(self.embedding_dim)}


@dataclass(frozen=True)
class Twin:
    """A keyword's prototype in context (:mod:`kws_proto.spot.context`): the mean of its clips'
    plain views and ``views`` views said between other words, normalised against the same cohort
    as the keyword (``norm``).  A window's score is the smaller of the keyword's own and
    ``2 ** (z_twin - shift)``, so the keyword's one threshold cuts the twin ``shift`` cohort
    units looser (:func:`kws_proto.spot.decision.keyword_distances`)."""

    prototype: np.ndarray  # [d] float32
    norm: CohortNorm
    shift: float
    views: int

    def to_dict(self) -> dict:
        return {"norm": self.norm.to_dict(), "shift": float(self.shift), "views": int(self.views)}


@dataclass(frozen=True)
class Keyword:
    """One enrolled keyword.

    Attributes
    ----------
    name : str
    prototype : np.ndarray [shape=(d,), dtype=float32]
        Mean of ``support`` (beside recorded clips, text enrolment weighs the synthesised
        ones as one half: :mod:`kws_proto.spot.text`).
    support : np.ndarray [shape=(k, d), dtype=float32]
        Embeddings of the support clips (enrolment: each the mean of its views,
        :func:`kws_proto.spot.decision.clip_embeddings`).
    clips : tuple of str [len k]
        Names of the support clips.
    threshold : float
        A clip is within this keyword when its distance (by ``score``) is at most this: larger
        accepts more.
    calibration : dict
        How ``threshold`` was chosen (rule and the numbers behind it).
    score : str
        The scoring rule: ``"prototype"`` (squared distance to ``prototype``) or ``"maxcos"``
        (cosine distance to the nearest of ``support``); :mod:`kws_proto.spot.decision`.
    norm : CohortNorm or None
        The keyword's cohort statistics: its distances (and ``threshold``) are normalised
        against a cohort (:mod:`kws_proto.spot.cohort`); None: raw distances.
    twin : Twin or None
        The keyword enrolled in context beside it (a normalised keyword of the prototype rule);
        a window is scored by the nearer of the two.
    """

    name: str
    prototype: np.ndarray
    support: np.ndarray
    clips: tuple[str, ...]
    threshold: float
    calibration: dict = field(default_factory=dict)
    score: str = PROTOTYPE
    norm: CohortNorm | None = None
    twin: Twin | None = None


class KeywordBank:
    """Enrolled keywords of one encoder and front end, in enrolment order.

    Parameters
    ----------
    encoder : EncoderInfo
    features : FeatureConfig
        The front end the embeddings were made with.
    keywords : iterable of Keyword
    """

    def __init__(self, encoder: EncoderInfo, features: FeatureConfig, keywords=()):
        self.encoder = encoder
        self.features = features
        self._keywords: dict[str, Keyword] = {}
        for kw in keywords:
            self.add(kw)

    # -- contents ---------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """Keyword names in enrolment order."""
        return list(self._keywords)

    @property
    def keywords(self) -> list[Keyword]:
        return list(self._keywords.values())

    def __len__(self) -> int:
        return len(self._keywords)

    def __contains__(self, name: str) -> bool:
        return name in self._keywords

    def __getitem__(self, name: str) -> Keyword:
        if name not in self._keywords:
            raise BankError(f"keyword {name!r} is not in the bank (it holds: "
                            f"{', '.join(self.names) or 'nothing'})")
        return self._keywords[name]

    @property
    def prototypes(self) -> np.ndarray:
        """``[n_kw, d]`` float32, in :attr:`names` order."""
        d = self.encoder.embedding_dim
        return np.stack([k.prototype for k in self.keywords]) if self else np.zeros((0, d), np.float32)

    @property
    def score(self) -> str:
        """The keywords' scoring rule (one per bank; ``"prototype"`` while it is empty)."""
        return self.keywords[0].score if self else PROTOTYPE

    @property
    def norms(self) -> list[CohortNorm | None]:
        """Each keyword's cohort statistics (None: raw distances), in :attr:`names` order."""
        return [k.norm for k in self.keywords]

    @property
    def thresholds(self) -> np.ndarray:
        """``[n_kw]`` float64, in :attr:`names` order."""
        return np.asarray([k.threshold for k in self.keywords], dtype=np.float64)

    def add(self, keyword: Keyword, replace: bool = False) -> None:
        """Add ``keyword``; an existing name needs ``replace=True`` (it keeps its position)."""
        if not keyword.name or keyword.name != keyword.name.strip() or keyword.name == "unknown":
            raise ConfigError(f"keyword name {keyword.name!r} must be non-empty, without leading "
                              "or trailing spaces, and not 'unknown'")
        if keyword.name in self._keywords and not replace:
            raise BankError(f"keyword {keyword.name!r} is already in the bank; "
                            "replace it (--replace) or remove it (--remove) first")
        d = self.encoder.embedding_dim
        support = np.asarray(keyword.support, dtype=np.float32)
        if support.ndim != 2 or support.shape[1] != d or len(support) != len(keyword.clips):
            raise BankError(f"keyword {keyword.name!r}: support of shape {support.shape} does not "
                            f"match {len(keyword.clips)} clips of {d}-dim embeddings")
        if not (np.isfinite(keyword.threshold) and keyword.threshold >= 0):
            raise BankError(f"keyword {keyword.name!r}: threshold={keyword.threshold!r} must be "
                            "finite and >= 0")
        self._check_score(keyword)
        self._check_norm(keyword)
        self._check_twin(keyword)
        self._keywords[keyword.name] = keyword

    def _check_twin(self, keyword: Keyword) -> None:
        """Refuse a twin of another size, or beside raw distances, another scoring rule or
        another cohort than its keyword's."""
        twin = keyword.twin
        if twin is None:
            return
        shape = np.shape(twin.prototype)
        if shape != (self.encoder.embedding_dim,) or not math.isfinite(twin.shift):
            raise BankError(f"keyword {keyword.name!r}: its twin prototype of shape {shape} (shift "
                            f"{twin.shift!r}) is not a {self.encoder.embedding_dim}-dim embedding "
                            "with a finite shift")
        if (keyword.norm is None or keyword.score != PROTOTYPE
                or _cohort_of(twin.norm) != _cohort_of(keyword.norm)):
            raise BankError(f"keyword {keyword.name!r}: a twin in context needs the keyword "
                            "normalised against the same cohort by the same method, scored by "
                            "its prototype")

    @property
    def twins(self) -> list[Twin | None]:
        """Each keyword's :class:`Twin` (None: none), in :attr:`names` order."""
        return [k.twin for k in self.keywords]

    def _check_score(self, keyword: Keyword) -> None:
        """Refuse an unknown scoring rule, or one other than the bank's other keywords' (the
        nearest keyword is chosen by comparing their distances)."""
        if keyword.score not in SCORES:
            raise BankError(f"keyword {keyword.name!r}: score={keyword.score!r} is not a scoring "
                            f"rule ({', '.join(SCORES)})")
        others = [k for k in self.keywords if k.name != keyword.name]
        if others and others[0].score != keyword.score:
            raise BankError(f"keyword {keyword.name!r} scores by {keyword.score!r}, the bank's "
                            f"keywords ({', '.join(k.name for k in others)}) by "
                            f"{others[0].score!r}: one bank holds one scoring rule")

    def _check_norm(self, keyword: Keyword) -> None:
        """Refuse a keyword normalised against another encoder's cohort, or against another
        cohort (or by another method) than the bank's other keywords (or normalised beside raw
        ones, or raw beside normalised ones): the nearest keyword is chosen by comparing their
        distances."""
        norm = keyword.norm
        if norm is not None and norm.fingerprint != self.encoder.fingerprint:
            raise BankError(f"keyword {keyword.name!r} is normalised against a cohort embedded by "
                            f"another encoder ({norm.fingerprint[:16]}..., this bank's "
                            f"{self.encoder.fingerprint[:16]}...): build the background with "
                            "this bank's encoder (`kws-proto background`)")
        others = [k for k in self.keywords if k.name != keyword.name]
        if not others:
            return
        theirs = others[0].norm
        if _cohort_of(norm) != _cohort_of(theirs):
            raise BankError(f"keyword {keyword.name!r} scores by {_say(norm)}, the bank's keywords "
                            f"({', '.join(k.name for k in others)}) by {_say(theirs)}: one bank "
                            "holds keywords normalised one way against one cohort (or none)")

    def remove(self, name: str) -> Keyword:
        """Remove and return keyword ``name``."""
        kw = self[name]
        del self._keywords[name]
        return kw

    def make_keyword(self, name: str, support: np.ndarray, clips, threshold: float,
                     calibration: dict | None = None) -> Keyword:
        """A :class:`Keyword` of this bank's metric from support embeddings ``[k, d]``."""
        support = np.asarray(support, dtype=np.float32)
        proto = support.mean(axis=0)  # [d]
        return Keyword(name, proto.astype(np.float32), support, tuple(str(c) for c in clips),
                       float(threshold), dict(calibration or {}))

    # -- header -----------------------------------------------------------------------------
    def header(self) -> dict:
        scored = self.score != PROTOTYPE
        normed = any(k.norm is not None for k in self.keywords)
        twinned = any(k.twin is not None for k in self.keywords)
        version = (TWIN_VERSION if twinned else NORMED_VERSION if normed else
                   SCORED_VERSION if scored else VERSION)
        return {
            "format": FORMAT, "version": version,
            "encoder": self.encoder.to_dict(), "features": self.features.to_dict(),
            "keywords": [{"name": k.name, "clips": list(k.clips), "threshold": k.threshold,
                          "calibration": k.calibration, **({"score": k.score} if scored else {}),
                          **({"norm": k.norm.to_dict()} if k.norm is not None else {}),
                          **({"twin": k.twin.to_dict()} if k.twin is not None else {})}
                         for k in self.keywords],
        }


def _cohort_of(norm: CohortNorm | None):
    """What keywords compared with each other share: the unit and the cohort (None: raw)."""
    return None if norm is None else (norm.method, *norm.cohort)


def _say(norm: CohortNorm | None) -> str:
    return ("raw distances" if norm is None
            else f"distances normalised ({norm.method}) against {norm.source!r}")


def save_bank(bank: KeywordBank, path: str | os.PathLike) -> Path:
    """Write ``bank`` to ``path`` atomically (sibling temporary file, then ``os.replace``)."""
    path = Path(path)
    header = json.dumps(bank.header(), sort_keys=True, separators=(",", ":")).encode("utf-8")
    d = bank.encoder.embedding_dim
    protos = bank.prototypes.astype(np.float32)
    support = (np.concatenate([k.support for k in bank.keywords]).astype(np.float32)
               if len(bank) else np.zeros((0, d), np.float32))
    data = checked_npz(header, {"prototypes": protos, "support": support, **_twins(bank)},
                       named=False)
    atomic_write_bytes(path, data, fsync=True)
    return path


def _twins(bank: KeywordBank) -> dict:
    """``{"twins": [n_twin, d]}`` for a bank with twins, else ``{}`` (the member is absent)."""
    found = [t.prototype for t in bank.twins if t is not None]
    return {"twins": np.stack(found).astype(np.float32)} if found else {}


def load_bank(path: str | os.PathLike) -> KeywordBank:
    """Read and verify a bank written by :func:`save_bank`.

    Raises
    ------
    BankError
        Missing, truncated, tampered with, of another format or version, or inconsistent.
    """
    path = Path(path)
    _check_is_bank_file(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [m for m in MEMBERS if m not in z.files]
            if missing:
                raise BankError(f"{path}: not a keyword bank (missing {', '.join(missing)})")
            arrays = {m: z[m] for m in MEMBERS}
            twins = {"twins": z["twins"]} if "twins" in z.files else {}
    except BankError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise BankError(f"{path}: unreadable or truncated keyword bank ({e})") from e
    header_bytes = arrays["header"].tobytes()
    protos, support = arrays["prototypes"], arrays["support"]
    if stored_checksum(arrays) != checksum(header_bytes, {"prototypes": protos, "support": support,
                                                          **twins}, named=False):
        raise BankError(f"{path}: checksum mismatch: the bank was modified or damaged after it "
                        "was written; enrol the keywords again")
    try:
        header = json.loads(header_bytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise BankError(f"{path}: malformed header ({e})") from e
    versions = (VERSION, SCORED_VERSION, NORMED_VERSION, TWIN_VERSION)
    if header.get("format") != FORMAT or header.get("version") not in versions:
        raise BankError(f"{path}: format {header.get('format')!r} version {header.get('version')!r}"
                        f" is not {FORMAT!r} version {', '.join(map(str, versions))}")
    return _from_parts(path, header, protos, support, twins.get("twins"))


def _is_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start >= len(head) - 3 and b"\0" not in head  # cut inside a character
    return b"\0" not in head


def _check_is_bank_file(path: Path) -> None:
    """A :class:`BankError` saying what ``path`` is when it cannot be a bank file at all."""
    if path.is_dir():
        raise BankError(f"{path}: is a directory, not a keyword bank (a .npz file written by "
                        "`kws-proto enroll`)")
    if not path.is_file():
        raise BankError(f"{path}: no such keyword bank (create one with `kws-proto enroll`)")
    with open(path, "rb") as f:
        head = f.read(512)
    if not head.startswith(b"PK"):  # a zip archive's signature; a truncated one is read below
        kind = "an empty file" if not head else "a text file" if _is_text(head) else "not a zip archive"
        raise BankError(f"{path}: {kind}, not a keyword bank (a bank is the .npz zip archive "
                        "`kws-proto enroll` writes)")


def _from_parts(path: Path, header: dict, protos: np.ndarray, support: np.ndarray,
                twins: np.ndarray | None = None) -> KeywordBank:
    try:
        enc = header["encoder"]
        encoder = EncoderInfo(model=enc["model"], fingerprint=enc["fingerprint"],
                              encoder=enc["encoder"], distance=enc["distance"],
                              embedding_dim=int(enc["embedding_dim"]), spec=enc.get("spec"))
        features = FeatureConfig.from_dict(header["features"])
        entries = header["keywords"]
        sizes = [len(k["clips"]) for k in entries]
        norms = [CohortNorm.from_dict(k["norm"]) if "norm" in k else None for k in entries]
        twinned = [(CohortNorm.from_dict(k["twin"]["norm"]), float(k["twin"]["shift"]),
                    int(k["twin"]["views"])) if "twin" in k else None for k in entries]
    except (KeyError, TypeError, ValueError) as e:
        raise BankError(f"{path}: malformed header ({e!r})") from e
    d = encoder.embedding_dim
    if protos.shape != (len(entries), d) or support.shape != (sum(sizes), d):
        raise BankError(f"{path}: arrays of shapes {protos.shape} and {support.shape} do not match "
                        f"{len(entries)} keywords with {sum(sizes)} clips of {d}-dim embeddings")
    n_twin = sum(t is not None for t in twinned)
    got = (0, d) if twins is None else twins.shape
    if got != (n_twin, d) and (n_twin or twins is not None):
        raise BankError(f"{path}: {n_twin} keyword(s) with a twin in context, but a twins array "
                        f"of shape {got}")
    rows = iter(twins if twins is not None else ())
    twinned = [None if t is None else Twin(next(rows), *t) for t in twinned]
    bank = KeywordBank(encoder, features)
    offsets = np.cumsum([0] + sizes)
    for i, k in enumerate(entries):
        bank.add(Keyword(k["name"], protos[i], support[offsets[i]:offsets[i + 1]],
                         tuple(k["clips"]), float(k["threshold"]), k.get("calibration", {}),
                         k.get("score", PROTOTYPE), norms[i], twinned[i]))
    return bank
