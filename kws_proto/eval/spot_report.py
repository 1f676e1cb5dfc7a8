"""A spotting benchmark's result (:func:`kws_proto.eval.spot_eval.spot_eval`) as a table, a DET
plot (PNG) and JSON."""

from __future__ import annotations

import json
from pathlib import Path

from kws_proto.eval.plots import _figure, _save
from kws_proto.eval.spot_results import SpotEvalResult
from kws_proto.eval.streams import GAP


def table(result: SpotEvalResult) -> str:
    """The result as a plain-text table, one row per variant."""
    variants = result.variants
    w = max(8, *(len(v.name) for v in variants))

    def pct(x, ci):
        return f"{100 * x:5.1f} [{100 * ci[0]:4.1f}-{100 * ci[1]:4.1f}]"

    keys = list(variants[0].recall_at)
    cols = (f"{'variant':<{w}} {'recall @ calibrated':>19} {'FA/h @ cal':>18} " +
            " ".join(f"{'recall @ ' + k + ' FA/h':>19}" for k in keys) +
            f" {'hours':>5} {'s/trial':>7}")
    lines = [_head(result), cols]
    for v in variants:
        c, ci, at = v.calibrated, v.ci95, v.recall_at
        fa = f"{c['fa_per_hour']:5.1f} [{ci['fa_per_hour'][0]:4.1f}-{ci['fa_per_hour'][1]:4.1f}]"
        lines.append(f"{v.name:<{w}} {pct(c['recall'], ci['recall']):>19} {fa:>18} " +
                     " ".join(f"{pct(at[k], ci['recall_at_' + k]):>19}" for k in keys) +
                     f" {v.stream_hours:5.2f} {v.seconds_per_trial:7.2f}")
    for v in variants[1:]:
        lines.append(f"{v.name} - {variants[0].name}: " + ", ".join(
            f"recall @ {k} FA/h {100 * d['diff']:+.1f} points "
            f"[{100 * d['ci95'][0]:+.1f}, {100 * d['ci95'][1]:+.1f}]"
            for k, d in v.vs_first.items()))
    lines += [line for v in variants for line in _background(v)]
    lines += [line for v in variants for line in _fell_on(v)]
    lines.append("[95% intervals: bootstrap over trials; differences paired on the same trials]")
    return "\n".join(lines)


def _head(result: SpotEvalResult) -> str:
    o = result.options
    disjoint = ", speaker-disjoint" if result.speaker_disjoint else ", file-disjoint"
    if result.speaker_disjoint and o.get("support_speakers") == "several":
        disjoint += f" (each keyword enrolled from {o['shots']} speakers)"
    if not o.get("sentences"):
        return (f"{result.dataset}: {o['trials']} trials x {o['keywords']} keywords x "
                f"{o['shots']} shots, {o['words']} words per stream ({o['target_ratio']:g} "
                f"targets), snr {o['snr'] if o['snr'] is not None else 'clean'}, "
                f"seed {o['seed']}{disjoint}")
    s = result.extra["sentences"]
    return (f"{result.dataset}: {o['trials']} trials x {o['keywords']} keywords x {o['shots']} "
            f"shots in {s['utterances']} sentences ({s['hours']:.2f} h, {s['speakers']} speakers"
            f", {len(s['skipped'])} skipped); keywords of >= {o['min_letters']} letters, "
            f"{len(result.extra['excluded_words'])} training words excluded, seed {o['seed']}"
            f"{disjoint}")


def _background(v) -> list[str]:
    """Lines of a variant's false alarms on keyword-free speech (sentence benchmark)."""
    b = v.background
    if b is None:
        return []
    out = [f"{v.name}: background at calibrated: {b['per_keyword_fa_per_hour']:.1f} FA/h per "
           f"keyword ({b['per_keyword_false_alarms']} in {b['per_keyword_hours']:.2f} keyword-"
           "hours of sentences without it)"]
    out += [f"{v.name}: background at calibrated: {f['fa_per_hour']:.1f} FA/h of the trial's "
            f"bank in {name} ({f['false_alarms']} in {f['hours']:.3f} h)"
            for name, f in b["folders"].items()]
    return out


FELL_ON_SHOWN = 6  # (keyword, word said) pairs a variant's line names


def _fell_on(v) -> list[str]:
    """A line of what a variant's false alarms at the calibrated point fell on: how many on
    words that are no target, on targets (another keyword's, or a second detection), in gaps,
    and the most frequent (keyword detected <- word said) pairs."""
    words = v.false_alarm_words
    if not words:
        return []
    kinds = {"other words": 0, "targets": 0, "gaps": 0}
    for w in words:
        kind = "gaps" if w["said"] == GAP else "targets" if w["said_is_target"] else "other words"
        kinds[kind] += w["false_alarms"]
    top = ", ".join(f"{w['keyword']} <- {w['said']} x{w['false_alarms']}"
                    for w in words[:FELL_ON_SHOWN])
    return [f"{v.name}: false alarms at calibrated fell on " +
            ", ".join(f"{k} {n}" for k, n in kinds.items()) + f"; most often {top}"]


def det_plot(result: SpotEvalResult, out) -> Path:
    """Recall against false alarms per hour, one line per variant, factor 1 marked."""
    o = result.options
    fig = _figure(5.2, 4.0)
    ax = fig.subplots()
    for v in result.variants:
        pts = v.curve
        x = [p["fa_per_hour"] for p in pts]
        y = [100 * p["recall"] for p in pts]
        (line,) = ax.plot(x, y, marker=".", markersize=4, label=v.name)
        c = v.calibrated
        ax.plot([c["fa_per_hour"]], [100 * c["recall"]], marker="o", markersize=8,
                markerfacecolor="none", color=line.get_color())
    for x in result.variants[0].fa_points:
        ax.axvline(x, color="grey", linestyle=":", linewidth=1)
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlim(left=0)
    ax.set_xlabel("false alarms per hour of " + ("sentences" if o.get("sentences") else "stream"))
    ax.set_ylabel("recall (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{Path(result.dataset).name}: {o['trials']} trials, " + (
                 "sentences" if o.get("sentences") else
                 f"snr {o['snr'] if o['snr'] is not None else 'clean'}") + " (o: calibrated)",
                 fontsize="medium")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="upper left")
    return _save(fig, out)


def to_json(result: SpotEvalResult) -> str:
    return json.dumps(result.to_dict(), indent=2, default=float)
