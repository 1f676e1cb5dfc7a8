"""``make demo``: does the design's dilated residual ProtoRes beat the Sequential encoder?

1. synthesises the built-in corpus at demo size into ``data/synth-demo`` (once);
2. trains the three demo configs of ``experiments/configs/demo/`` into ``runs/demo/<name>`` under
   one budget rule (1,000 5-way 5-shot episodes each, the same augmentation, schedule and weight
   average): ``conv4`` (the Sequential encoder), ``protores_design`` (ProtoRes exactly as the
   design describes it, temporal layout) and ``protores`` (the package's ProtoRes configuration: two
   TD-ResNet7-like ProtoRes side by side).  Finished runs are reused; a run of an older config
   of the same name is moved aside to ``runs/demo/<name>.old-N``;
3. when the ``gse`` extra is installed, fuses ``protores`` post-hoc with the frozen Google speech
   embedding into ``runs/demo/fused`` (:func:`kws_proto.eval.fused_run.ensure_fused`: centres
   from 1,000 clips, seed 0, of the corpus's *training* words, which no test set uses; reused
   while both members' fingerprints and the clips hold);
4. scores the three, the MFCC + DTW baseline and, when its extra is installed, the frozen Google
   speech embedding and the fused model on the same fixed test episodes of the corpus's test words
   (``runs/demo/compare/``), then on the real speech of ``../shared/data`` when present
   (``runs/demo/compare-fsdd``, ``-picovoice``): words and voices none of them heard;
5. answers the question in words with the numbers, after the tables and in each
   ``results.md``, and says what the fusion adds over each of its two members.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from data_prep.builtin import ensure_dataset
from kws_proto.config import load_config
from kws_proto.eval.compare import GSE_NAME, compare, ensure_trained, retire_stale_run
from kws_proto.eval.evaluate import parse_grid
from kws_proto.eval.fused_run import ensure_fused
from kws_proto.eval.gse import available as gse_available
from kws_proto.eval.report import answer, fusion_answer
from kws_proto.eval.suites import BUILTIN, REAL
from kws_proto.util.atomic import atomic_write_text
from kws_proto.util.quiet_tf import quiet_tensorflow

REPO = Path(__file__).resolve().parents[1]
SEQUENTIAL, DESIGN, DEFAULT = "conv4", "protores_design", "protores"
CONFIGS = [REPO / "experiments" / "configs" / "demo" / f"{n}.yaml" for n in (SEQUENTIAL, DESIGN, DEFAULT)]
FUSED = "fused"  # runs/demo/fused: DEFAULT fused with the Google speech embedding
CENTRE_CLIPS = 1000  # training-word clips the fused members' centres are the means of (seed 0)


def main(argv: list[str] | None = None) -> int:
    quiet_tensorflow()  # TensorFlow's start-up chatter off the terminal

    t0 = time.perf_counter()
    runs = Path("runs/demo")
    episodes = int(os.environ.get("KWS_DEMO_EPISODES", 1000))
    suites = [(BUILTIN, "on words and voices of the built-in corpus neither encoder heard")]
    suites += [(s, f"on real speech ({s.name}) that no encoder heard") for s in REAL]
    answers = run_demo(CONFIGS, runs, suites, episodes)
    print("\n== the answer ==")
    for report, text in answers:
        print(f"- {text}")
        _append(report, text)
    print(f"\ndemo finished in {(time.perf_counter() - t0) / 60:.1f} min")
    print("runs: " + ", ".join(f"runs/demo/{p.stem}" for p in CONFIGS))
    print("reports (tables, plots, the answer): " + ", ".join(str(r.parent) for r, _ in answers))
    return 0


def run_demo(configs, runs: Path, suites, episodes: int = 1000, n_query: int = 15,
             clips: int = CENTRE_CLIPS, progress: bool = True) -> list[tuple[Path, str]]:
    """Train (or reuse) ``configs`` (named like :data:`CONFIGS`) into ``runs``, fuse the default
    with the Google speech embedding, and compare them all on each available suite of ``suites``
    (``(Suite, where)`` pairs); returns ``(results.md, answer)`` per suite scored."""
    cfgs = [load_config(p) for p in configs]
    for cfg in cfgs:  # a run of an older demo config is moved aside, not reused or fatal
        retire_stale_run(cfg, runs)
    fused = _fused_model(cfgs, runs, clips, progress)
    answers = []
    for suite, where in suites:
        if not suite.available():
            print(f"(skipping real speech {suite.name}: {suite.source} is absent)")
            continue
        out = runs / ("compare" if suite.source is None else f"compare-{suite.name}")
        print(f"\n== {where} ==", flush=True)
        settings = parse_grid(suite.grid, n_query, episodes)
        models = compare(configs, out, runs_root=runs, eval_data=suite.dataset(),
                         classes=suite.classes, speaker_disjoint=suite.speaker_disjoint,
                         settings=settings, command="make demo", fused=fused, progress=progress)
        answers.append((out / "results.md", _answer(models, settings[0], where)))
    return answers


def _fused_model(cfgs, runs: Path, clips: int, progress: bool) -> list[Path]:
    """``[runs/fused]``: the default's run fused with the Google speech embedding, centred on
    ``clips`` clips of its corpus's training words; ``[]`` (said) without the ``gse`` extra.

    Every config is trained first, in ``compare``'s order (the first training fixes this
    process's thread pools), so ``compare`` then reuses the runs."""
    if not gse_available():
        print("(skipping the fused model: the Google speech embedding's extra is not installed; "
              "pip install -e '.[gse]')")
        return []
    run = {c.name: ensure_trained(c, runs, progress) for c in cfgs}[DEFAULT]
    cfg = next(c for c in cfgs if c.name == DEFAULT)
    ensure_fused(run.root, runs / FUSED, ensure_dataset(cfg.data, progress=progress),
                 frozen=(GSE_NAME,), clips=clips, seed=0, progress=progress)
    return [runs / FUSED]


def _answer(models, setting, where: str) -> str:
    text = answer(models, setting, DESIGN, SEQUENTIAL, DEFAULT, where)
    extra = fusion_answer(models, setting, FUSED, DEFAULT, GSE_NAME)
    return f"{text} {extra}" if extra else text


def _append(report: Path, text: str) -> None:
    """Add the answer to a comparison's ``results.md`` (rewritten atomically)."""
    atomic_write_text(report, report.read_text(encoding="utf-8") + f"\n## The answer\n\n{text}\n")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
