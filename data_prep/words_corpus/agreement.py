"""How far two word alignments (``alignments.tsv``: utterance, word, start, end) disagree.

Run as ``python -m data_prep.words_corpus.agreement OURS.tsv REFERENCE.tsv [--tolerance 0.05]``:
prints the agreement as JSON.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys

import numpy as np

from kws_proto.errors import ConfigError

COLUMNS = ("utterance", "word", "start", "end")


def read_alignments(path: str | os.PathLike) -> dict[str, list[tuple[str, float, float]]]:
    """``{utterance: [(word, start, end), ...]}`` of an ``alignments.tsv``, in file order."""
    out: dict[str, list[tuple[str, float, float]]] = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t")
        if not set(COLUMNS) <= set(reader.fieldnames or []):
            raise ConfigError(f"{path}: needs columns {COLUMNS}, has {reader.fieldnames}")
        for r in reader:
            out.setdefault(r["utterance"], []).append((r["word"], float(r["start"]), float(r["end"])))
    return out


def agreement(ours: dict, reference: dict, tolerance: float = 0.05) -> dict:
    """Boundary agreement over the utterances both aligned to the same words.

    Parameters
    ----------
    ours, reference : dict
        ``{utterance: [(word, start, end), ...]}`` (:func:`read_alignments`).
    tolerance : float
        Seconds within which a boundary agrees.

    Returns
    -------
    dict
        ``words`` compared; ``start_within``, ``end_within``, ``both_within``: the fraction of those
        words whose start, end, or both lie within ``tolerance``; ``median_abs_start_ms``,
        ``median_abs_end_ms``; ``utterances`` compared, ``only_reference`` (utterances we did not
        align), ``only_ours``, ``different_words`` (same utterance, other word sequence).
    """
    common = sorted(set(ours) & set(reference))
    same = [u for u in common if [w for w, *_ in ours[u]] == [w for w, *_ in reference[u]]]
    pairs = np.asarray([(a[1], a[2], b[1], b[2]) for u in same for a, b in zip(ours[u], reference[u])],
                       dtype=np.float64).reshape(-1, 4)  # [words, (start, end, ref start, ref end)]
    d_start, d_end = np.abs(pairs[:, 0] - pairs[:, 2]), np.abs(pairs[:, 1] - pairs[:, 3])  # [words]
    tol = tolerance + 1e-9  # boundaries are written to 0.01 s
    n = max(len(pairs), 1)
    return {
        "tolerance_s": tolerance,
        "utterances": len(same),
        "words": len(pairs),
        "start_within": float(np.sum(d_start <= tol) / n),
        "end_within": float(np.sum(d_end <= tol) / n),
        "both_within": float(np.sum((d_start <= tol) & (d_end <= tol)) / n),
        "median_abs_start_ms": float(np.median(d_start) * 1000) if len(pairs) else None,
        "median_abs_end_ms": float(np.median(d_end) * 1000) if len(pairs) else None,
        "only_reference": sorted(set(reference) - set(ours)),
        "only_ours": sorted(set(ours) - set(reference)),
        "different_words": sorted(set(common) - set(same)),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m data_prep.words_corpus.agreement",
                                description=__doc__.splitlines()[0])
    p.add_argument("ours")
    p.add_argument("reference")
    p.add_argument("--tolerance", type=float, default=0.05, help="seconds")
    args = p.parse_args(argv)
    result = agreement(read_alignments(args.ours), read_alignments(args.reference), args.tolerance)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
