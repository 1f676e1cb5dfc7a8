"""The comparison report: ``results.csv``, ``results.md`` and the plots, from scored models."""

from __future__ import annotations

import csv
import io
import math
import os
import platform
import time
from pathlib import Path

import numpy as np

from kws_proto.errors import ConfigError
from kws_proto.eval import plots
from kws_proto.util.atomic import atomic_write_text
from kws_proto.util.provenance import git_commit
from kws_proto.util.stats import mean_ci, paired_difference

REFERENCE_ENCODER = "conv4"  # by default paired differences are taken against the Sequential encoder

COLUMNS = ("model", "encoder", "n_way", "k_shot", "n_query", "episodes", "accuracy", "ci95",
           "reference", "diff_vs_reference", "diff_ci95", "diff_vs_dtw", "diff_vs_dtw_ci95", "parameters", "embedding_dim", "train_minutes",
           "ms_per_train_episode", "ms_per_clip")


def machine() -> str:
    """A one-line description of this machine for results tables."""
    import tensorflow as tf  # lazy: TensorFlow

    cpu = platform.processor() or platform.machine()
    gpus = len(tf.config.list_physical_devices("GPU"))
    return (f"{platform.system()} {platform.machine()} {cpu}, {os.cpu_count()} cores, "
            f"{gpus or 'no'} GPU, Python {platform.python_version()}, TensorFlow {tf.__version__}")


def reference_model(models, reference: str | None = None):
    """The model paired differences are taken against: the one named ``reference``, else the
    first Sequential encoder (None when there is neither)."""
    if reference is not None:
        ref = next((m for m in models if m.name == reference), None)
        if ref is None:
            raise ConfigError(f"reference={reference!r} is none of the compared models "
                              f"({', '.join(m.name for m in models)})")
        return ref
    return next((m for m in models if m.encoder == REFERENCE_ENCODER), None)


def result_rows(models, settings, reference: str | None = None) -> list[dict]:
    """One row per (model, setting), with the paired differences to the reference model
    (:func:`reference_model`) and to the MFCC + DTW baseline on the same episodes (NaN where
    there is no such model)."""

    ref = reference_model(models, reference)
    dtw = next((m for m in models if m.encoder == "dtw"), None)
    rows = []
    for m in models:
        for s in settings:
            acc = m.accuracies[(s.n_way, s.k_shot)]
            summary = mean_ci(acc)
            diff = (paired_difference(acc, ref.accuracies[(s.n_way, s.k_shot)])
                    if ref is not None and m is not ref else None)
            vs_dtw = (paired_difference(acc, dtw.accuracies[(s.n_way, s.k_shot)])
                      if dtw is not None and m is not dtw else None)
            rows.append({
                "model": m.name, "encoder": m.encoder, "n_way": s.n_way, "k_shot": s.k_shot,
                "n_query": s.n_query, "episodes": len(acc),
                "accuracy": summary.mean, "ci95": summary.ci95,
                "reference": ref.name if ref is not None else "",
                "diff_vs_reference": diff.mean if diff else float("nan"),
                "diff_ci95": diff.ci95 if diff else float("nan"),
                "diff_vs_dtw": vs_dtw.mean if vs_dtw else float("nan"),
                "diff_vs_dtw_ci95": vs_dtw.ci95 if vs_dtw else float("nan"),
                "parameters": m.info["parameters"], "embedding_dim": m.info["embedding_dim"],
                "train_minutes": m.info["train_minutes"],
                "ms_per_train_episode": m.info["ms_per_episode"], "ms_per_clip": m.info["ms_per_clip"],
            })
    return rows


def _pct(x: float, signed: bool = False) -> str:
    return "–" if math.isnan(x) else (f"{100 * x:+.1f}" if signed else f"{100 * x:.1f}")


def _num(x, fmt: str) -> str:
    return "–" if isinstance(x, float) and math.isnan(x) else format(x, fmt)


def markdown_table(rows) -> str:
    ref = next((r["reference"] for r in rows if r["reference"]), "conv4")
    head = (f"| model | encoder | setting | accuracy % (95% CI) | Δ vs {ref} (paired, 95% CI) | "
            "Δ vs DTW (paired) | params | emb. dim | train min | ms / train episode | ms / clip |")
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        diff, vs_dtw = (
            "–" if math.isnan(r[key]) else f"{_pct(r[key], True)} ± {_pct(r[ci])}"
            for key, ci in (("diff_vs_reference", "diff_ci95"), ("diff_vs_dtw", "diff_vs_dtw_ci95"))
        )
        lines.append(
            f"| {r['model']} | {r['encoder']} | {r['n_way']}-way {r['k_shot']}-shot | "
            f"{_pct(r['accuracy'])} ± {_pct(r['ci95'])} | {diff} | {vs_dtw} | "
            f"{'–' if r['parameters'] is None else format(r['parameters'], ',')} | "
            f"{r['embedding_dim'] or '–'} | {_num(r['train_minutes'], '.1f')} | "
            f"{_num(r['ms_per_train_episode'], '.1f')} | {_num(r['ms_per_clip'], '.2f')} |"
        )
    return "\n".join(lines) + "\n"


def write_report(out, models, runs, settings, classes, seed, data, command: str = "",
                 reference: str | None = None) -> Path:
    """Write ``results.csv``, ``results.md`` and the PNG plots into ``out``; print the table."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = result_rows(models, settings, reference)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out / "results.csv", buf.getvalue())
    table = markdown_table(rows)
    header = (
        f"# Encoder comparison\n\n"
        f"- command: `{command or 'kws-proto compare'}`\n"
        f"- evaluation data: `{data}`, classes: {', '.join(classes)}\n"
        f"- episodes: {rows[0]['n_query'] if rows else '?'} queries per class, drawn once from seed "
        f"{seed} and shared by every model; accuracy = mean ± 1.96·σ/√n over episodes\n"
        f"- machine: {machine()}\n- commit: {git_commit()}\n"
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n\n"
    )
    atomic_write_text(out / "results.md", header + table)
    _plots(out, models, runs, settings, rows)
    print(table)
    print(f"results: {out / 'results.md'}, {out / 'results.csv'}; plots: {out}/*.png")
    return out / "results.md"


def _plots(out: Path, models, runs, settings, rows) -> None:
    plots.learning_curves({r.root.name: r.read_log() for r in runs}, out / "learning_curves.png")
    plots.accuracy_by_shot(
        [{"model": r["model"], "n_way": r["n_way"], "k_shot": r["k_shot"], "mean": r["accuracy"],
          "ci95": r["ci95"]} for r in rows],
        out / "accuracy_by_shot.png",
    )
    learned = [m for m in models if m.encoder not in ("dtw", "gse", "fusion")]  # trained here
    if not learned:
        return
    key = (settings[-1].n_way, settings[-1].k_shot)
    best = max(learned, key=lambda m: float(np.mean(m.accuracies[key])))
    episodes, scores = best.confusion[key]
    names, counts = plots.confusion_counts([e.classes for e in episodes], scores.labels,
                                           scores.predictions)
    plots.confusion_matrix(counts, names, out / f"confusion_{best.name}.png")
    if best.projection is not None:
        plots.embedding_projection(*best.projection, out / f"embeddings_{best.name}.png")


def answer(models, setting, design: str, sequential: str = "conv4", default: str | None = None,
           where: str = "on words neither encoder heard") -> str:
    """The design's question answered in two or three sentences with the numbers: does ``design``
    (the dilated residual encoder) beat ``sequential`` at ``setting`` on these episodes, how much
    faster does it train per episode, and what does the package's ``default`` encoder add?"""
    by = {m.name: m for m in models}
    key = (setting.n_way, setting.k_shot)
    cell = f"{setting.n_way}-way {setting.k_shot}-shot"
    d, s = by[design], by[sequential]
    diff = paired_difference(d.accuracies[key], s.accuracies[key])
    n = len(d.accuracies[key])
    verb = ("beats" if diff.mean - diff.ci95 > 0 else "loses to" if diff.mean + diff.ci95 < 0
            else "is level with")
    out = [f"{where.capitalize()}, ProtoRes (design) {verb} Sequential by {100 * diff.mean:+.1f} "
           f"± {100 * diff.ci95:.1f} points at {cell} (paired, {n:,} episodes: "
           f"{100 * float(np.mean(d.accuracies[key])):.1f} against {100 * float(np.mean(s.accuracies[key])):.1f} %)"]
    ms_d, ms_s = d.info.get("ms_per_episode"), s.info.get("ms_per_episode")
    if ms_d and ms_s and not (math.isnan(ms_d) or math.isnan(ms_s)):
        out[-1] += f" and trains {ms_s / ms_d:.1f}× faster per episode ({ms_d:.0f} against {ms_s:.0f} ms)."
    else:
        out[-1] += "."
    if default and default in by:
        w = paired_difference(by[default].accuracies[key], d.accuracies[key])
        out.append(f"The package's ProtoRes pair ({default}) adds {100 * w.mean:+.1f} ± {100 * w.ci95:.1f} "
                   f"points over the design's ProtoRes there.")
    if "gse" in by:
        g = paired_difference(by["gse"].accuracies[key], by[default or design].accuracies[key])
        out.append(f"The frozen Google speech embedding scores {100 * g.mean:+.1f} ± {100 * g.ci95:.1f} "
                   f"points against {default or design}.")
    return " ".join(out)


def fusion_answer(models, setting, fused: str, default: str, frozen: str = "gse") -> str:
    """How the fused model ``fused`` of ``default`` and ``frozen`` compares with each of its
    members at ``setting``: one sentence of paired differences on the same episodes ("" when
    one of the three was not scored)."""
    by = {m.name: m for m in models}
    if not all(name in by for name in (fused, default, frozen)):
        return ""
    key = (setting.n_way, setting.k_shot)
    f = by[fused].accuracies[key]
    vs = [paired_difference(f, by[name].accuracies[key]) for name in (default, frozen)]
    return (f"Fused with the frozen embedding ({fused}), {default} scores "
            f"{100 * float(np.mean(f)):.1f} % at {setting.n_way}-way {setting.k_shot}-shot: "
            f"{100 * vs[0].mean:+.1f} ± {100 * vs[0].ci95:.1f} points against {default} alone "
            f"and {100 * vs[1].mean:+.1f} ± {100 * vs[1].ci95:.1f} against {frozen} alone "
            f"(paired, the same episodes).")
