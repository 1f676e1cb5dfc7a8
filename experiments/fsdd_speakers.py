"""Where does a trained encoder lose accuracy on the FSDD digits: words, or speakers?

For every ordered pair of FSDD's six speakers (A, B): the ten digit prototypes are the mean
embeddings of *all* of A's clips of each digit (50 per digit), and every clip of B is classified
10-way by its nearest prototype. The diagonal (A = B, the clips scored include the ones averaged)
measures how well the encoder separates the digits within one voice; the off-diagonal, how far
that carries to another speaker. Then the 10 x 10 digit confusion over all cross-speaker pairs
(rows true digit, columns predicted, each row sums to 1).

    python experiments/fsdd_speakers.py RUN_DIR      (e.g. kws_proto/model/pretrained/default)

Reads ``data/fsdd``, prepared from ``../shared/data/fsdd`` (or ``$KWS_SHARED_DATA``) when missing.
"""

from __future__ import annotations

import os
import sys

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(run_dir: str) -> None:
    from kws_proto.eval.suites import FSDD
    from kws_proto.eval.evaluate import embed_rows, open_eval_data
    from kws_proto.model.loading import load_run_network

    cfg, net = load_run_network(run_dir)
    data = open_eval_data(cfg, FSDD.dataset(), progress=False)
    words = np.asarray([c.keyword for c in data.manifest.clips])
    speakers = data.manifest.speakers()
    emb = embed_rows(net, data.features, np.arange(len(words))).astype(np.float64)  # [n_clips, dim]
    digits, names = sorted(set(words)), sorted(set(speakers))
    label = np.asarray([digits.index(w) for w in words])
    acc = np.zeros((len(names), len(names)))
    confusion = np.zeros((len(digits), len(digits)))
    for i, a in enumerate(names):
        protos = np.stack([emb[(speakers == a) & (words == d)].mean(0) for d in digits])  # [10, dim]
        for j, b in enumerate(names):
            rows = speakers == b
            predicted = ((emb[rows][:, None] - protos[None]) ** 2).sum(-1).argmin(1)
            acc[i, j] = (predicted == label[rows]).mean()
            if i != j:
                np.add.at(confusion, (label[rows], predicted), 1)
    off = ~np.eye(len(names), dtype=bool)
    print(f"{run_dir}: 10-way accuracy, prototypes of one speaker (rows), clips of another (columns)")
    print("| prototypes \\ clips | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for i, a in enumerate(names):
        print(f"| {a} | " + " | ".join(f"{100 * x:.0f}" for x in acc[i]) + " |")
    print(f"same speaker: mean {100 * acc.diagonal().mean():.1f}; "
          f"other speaker: mean {100 * acc[off].mean():.1f} (min {100 * acc[off].min():.0f}, "
          f"max {100 * acc[off].max():.0f})")
    confusion /= confusion.sum(1, keepdims=True)
    print("\ndigit confusion across speakers (rows true, columns predicted, %)")
    print("| | " + " | ".join(digits) + " |")
    print("|---|" + "---|" * len(digits))
    for d, row in zip(digits, confusion):
        print(f"| {d} | " + " | ".join(f"{100 * x:.0f}" for x in row) + " |")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
