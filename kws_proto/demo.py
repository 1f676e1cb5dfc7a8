"""``make demo``: does the design's dilated residual ProtoRes beat the Sequential encoder?

1. synthesises the built-in corpus at demo size into ``data/synth-demo`` (once);
2. trains the three demo configs of ``experiments/configs/demo/`` into ``runs/demo/<name>`` under
   one budget rule (1,000 5-way 5-shot episodes each, the same augmentation, schedule and weight
   average): ``conv4`` (the Sequential encoder), ``protores_design`` (ProtoRes exactly as the
   design describes it, temporal layout) and ``protores`` (the package's default encoder: two
   TD-ResNet7-like ProtoRes side by side).  Finished runs are reused; a run of an older config
   of the same name is moved aside to ``runs/demo/<name>.old-N``;
3. scores the three, the MFCC + DTW baseline and, when its extra is installed, the frozen Google
   speech embedding on the same fixed test episodes of the corpus's test words
   (``runs/demo/compare/``), then on the real speech of ``../shared/data`` when present
   (``runs/demo/compare-fsdd``, ``-picovoice``): words and voices none of them heard;
4. answers the question in words with the numbers, after the tables and in each
   ``results.md``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from kws_proto.config import load_config
from kws_proto.eval.compare import compare, retire_stale_run
from kws_proto.eval.evaluate import parse_grid
from kws_proto.eval.report import answer
from kws_proto.eval.suites import BUILTIN, REAL
from kws_proto.util.atomic import atomic_write_text
from kws_proto.util.quiet_tf import quiet_tensorflow

REPO = Path(__file__).resolve().parents[1]
SEQUENTIAL, DESIGN, DEFAULT = "conv4", "protores_design", "protores"
CONFIGS = [REPO / "experiments" / "configs" / "demo" / f"{n}.yaml" for n in (SEQUENTIAL, DESIGN, DEFAULT)]


def main(argv: list[str] | None = None) -> int:
    quiet_tensorflow()  # TensorFlow's start-up chatter off the terminal


    t0 = time.perf_counter()
    runs = Path("runs/demo")
    for path in CONFIGS:  # a run of an older demo config is moved aside, not reused or fatal
        retire_stale_run(load_config(path), runs)
    episodes = int(os.environ.get("KWS_DEMO_EPISODES", 1000))
    suites = [(BUILTIN, "on words and voices of the built-in corpus neither encoder heard")]
    suites += [(s, f"on real speech ({s.name}) that no encoder heard") for s in REAL]
    answers = []
    for suite, where in suites:
        if not suite.available():
            print(f"(skipping real speech {suite.name}: {suite.source} is absent)")
            continue
        out = runs / ("compare" if suite.source is None else f"compare-{suite.name}")
        print(f"\n== {where} ==", flush=True)
        settings = parse_grid(suite.grid, 15, episodes)
        models = compare(CONFIGS, out, runs_root=runs, eval_data=suite.dataset(),
                         classes=suite.classes, speaker_disjoint=suite.speaker_disjoint,
                         settings=settings, command="make demo")
        answers.append((out / "results.md", _answer(models, settings[0], where)))
    print("\n== the answer ==")
    for report, text in answers:
        print(f"- {text}")
        _append(report, text)
    print(f"\ndemo finished in {(time.perf_counter() - t0) / 60:.1f} min")
    print("runs: " + ", ".join(f"runs/demo/{p.stem}" for p in CONFIGS))
    print("reports (tables, plots, the answer): " + ", ".join(str(r.parent) for r, _ in answers))
    return 0


def _answer(models, setting, where: str) -> str:
    return answer(models, setting, DESIGN, SEQUENTIAL, DEFAULT, where)


def _append(report: Path, text: str) -> None:
    """Add the answer to a comparison's ``results.md`` (rewritten atomically)."""
    atomic_write_text(report, report.read_text(encoding="utf-8") + f"\n## The answer\n\n{text}\n")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
