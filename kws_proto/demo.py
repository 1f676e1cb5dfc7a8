"""``make demo``: the built-in corpus, Sequential vs ProtoRes, compared on identical episodes.

1. synthesises the built-in corpus at demo size into ``data/synth-demo`` (once);
2. trains ``experiments/configs/demo/conv4.yaml`` and ``.../protores.yaml`` into
   ``runs/demo/conv4`` and ``runs/demo/protores`` (finished runs are reused);
3. scores both and the MFCC + DTW baseline on the same fixed test episodes (5-way 1-shot,
   5-way 5-shot, 10-way 5-shot, 1,000 episodes each) and writes ``runs/demo/compare/``;
4. when the real speech of ``../shared/data`` is present, scores them on it as well.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIGS = [REPO / "experiments" / "configs" / "demo" / f"{n}.yaml" for n in ("conv4", "protores")]


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from kws_proto.compare import compare

    t0 = time.perf_counter()
    out = Path("runs/demo/compare")
    compare(CONFIGS, out, runs_root=Path("runs/demo"),
            command="make demo (python -m kws_proto.demo)")
    print(f"\ndemo finished in {(time.perf_counter() - t0) / 60:.1f} min")
    print("runs: runs/demo/conv4, runs/demo/protores; report and plots: runs/demo/compare/")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
