"""``make demo``: the built-in corpus, Sequential vs ProtoRes, compared on identical episodes.

1. synthesises the built-in corpus at demo size into ``data/synth-demo`` (once);
2. trains ``experiments/configs/demo/conv4.yaml`` and ``.../protores.yaml`` into
   ``runs/demo/conv4`` and ``runs/demo/protores`` (finished runs are reused; a run of an
   older config of the same name is moved aside to ``runs/demo/<name>.old-N``);
3. scores both and the MFCC + DTW baseline on the same fixed test episodes of the corpus's test
   words and writes ``runs/demo/compare/``;
4. when the real speech of ``../shared/data`` is present, prepares it (``data/fsdd``,
   ``data/picovoice``) and scores the same runs on it: words and voices none of them heard.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIGS = [REPO / "experiments" / "configs" / "demo" / f"{n}.yaml" for n in ("conv4", "protores")]


def main(argv: list[str] | None = None) -> int:
    from kws_proto.util.quiet_tf import quiet_tensorflow

    quiet_tensorflow()  # TensorFlow's start-up chatter off the terminal

    from kws_proto.config import load_config
    from kws_proto.eval.compare import compare, retire_stale_run
    from kws_proto.eval.evaluate import parse_grid
    from kws_proto.eval.suites import BUILTIN, REAL

    t0 = time.perf_counter()
    runs = Path("runs/demo")
    for path in CONFIGS:  # a run of an older demo config is moved aside, not reused or fatal
        retire_stale_run(load_config(path), runs)
    episodes = int(os.environ.get("KWS_DEMO_EPISODES", 1000))
    print("== built-in corpus: unseen test words ==", flush=True)
    compare(CONFIGS, runs / "compare", runs_root=runs, settings=parse_grid(BUILTIN.grid, 15, episodes),
            command="make demo")
    reports = [runs / "compare" / "results.md"]
    for suite in REAL:
        if not suite.available():
            print(f"(skipping real speech {suite.name}: {suite.source} is absent)")
            continue
        print(f"\n== real speech, never trained on: {suite.name} ==", flush=True)
        compare(CONFIGS, runs / f"compare-{suite.name}", runs_root=runs, eval_data=suite.dataset(),
                classes=suite.classes, speaker_disjoint=suite.speaker_disjoint,
                settings=parse_grid(suite.grid, 15, episodes), command="make demo")
        reports.append(runs / f"compare-{suite.name}" / "results.md")
    print(f"\ndemo finished in {(time.perf_counter() - t0) / 60:.1f} min")
    print("runs: runs/demo/conv4, runs/demo/protores")
    print("reports (tables + plots): " + ", ".join(str(r.parent) for r in reports))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
