"""Does enrolling each support clip at several offsets (``ENROL_SHIFTS_MS``) help?

Picovoice keywords (``../shared/data/picovoice``, or ``$KWS_SHARED_DATA/picovoice``), the shipped
encoder (or the run directory given): 30 draws of 3 keywords x 5 support clips, 20 held-back
clips of each keyword and 40 clips of each of the other 3 words as unknown, from the first 80
readable clips of each word.  Queries are cut at their crop (aligned) and 50 / 100 ms either side
of it (where a sliding window with a 100 ms hop may start).  Prints, per enrolment rule and
margin, the share of held-back clips accepted as their own keyword, of unknown clips rejected,
and their mean.  Then ``detect`` on constructed streams (``stream_scores``) with either rule.

    KWS_SHARED_DATA=../shared/data python experiments/enrol_views.py [RUN_DIR]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
PICO = Path(os.environ.get("KWS_SHARED_DATA", REPO.parent / "shared" / "data")) / "picovoice"
WORDS = ("alexa", "computer", "jarvis", "smart mirror", "snowboy", "view glass")
SHIFTS_MS = (-100.0, -50.0, 0.0, 50.0, 100.0)  # views embedded once; rules pick among them
RULES = {"one view (0 ms)": (0.0,), "views -100/0/+100 ms (default)": (-100.0, 0.0, 100.0),
         "views -50/0/+50 ms": (-50.0, 0.0, 50.0), "views -100..+100 ms, 5": SHIFTS_MS}
QUERIES = {"aligned": (0.0,), "+-50 ms": (-50.0, 50.0), "+-100 ms": (-100.0, 100.0)}
PER_WORD, DRAWS, K, HELD, UNKNOWN = 80, 30, 5, 20, 40
STREAM_DRAWS = 40


def readable_clips(spotter) -> dict[str, list[Path]]:
    """``{word: [Path]}``: each word's first ``PER_WORD`` readable clips (sorted by name)."""
    from kws_proto.errors import AudioError

    out, skipped = {}, []
    for w in WORDS:
        out[w] = []
        for p in sorted((PICO / w).glob("*.flac")):
            try:
                spotter.load_views([p], (0.0,))
            except AudioError:  # the corpus holds a few corrupt files
                skipped.append(f"{w}/{p.name}")
                continue
            out[w].append(p)
            if len(out[w]) == PER_WORD:
                break
    if skipped:
        print(f"skipped {len(skipped)} unreadable clip(s): {', '.join(skipped)}")
    return out


def stream_scores(spotter, clips: dict[str, list[Path]], draws: int = STREAM_DRAWS) -> dict:
    """Hits, misses and false alarms of ``detect`` on constructed streams, per enrolment rule.

    Each draw: 3 keywords enrolled from 5 clips; a stream of 3 other clips of each keyword and
    one clip of each other word (random order), each between 1.5 s of faint noise, as in
    ``tests/test_detect.py``.  Returns ``{rule: [hits, misses, false alarms]}`` summed.
    """
    from kws_proto.spot.detect import Event, detect_audio, match_events
    from kws_proto.spot.enrolment import enrol_keyword

    sr = spotter.features.sample_rate
    rng = np.random.default_rng(1)
    rules = {r: RULES[r] for r in ("one view (0 ms)", "views -100/0/+100 ms (default)")}
    totals = {r: np.zeros(3, dtype=int) for r in rules}
    for _ in range(draws):
        keywords = list(rng.choice(WORDS, 3, replace=False))
        order, support = [], {}
        for w in keywords:
            idx = rng.permutation(len(clips[w]))
            support[w] = [clips[w][i] for i in idx[:K]]
            order += [(w, clips[w][i]) for i in idx[K:K + 3]]
        order += [(None, clips[w][rng.integers(len(clips[w]))]) for w in WORDS if w not in keywords]
        order = [order[i] for i in rng.permutation(len(order))]
        parts, truth, t = [], [], 0.0
        for (name, _), clip in zip(order, spotter.load_clips([p for _, p in order])):
            parts += [0.001 * rng.standard_normal(int(1.5 * sr)).astype(np.float32), clip]
            truth += [Event(name, t + 1.5, t + 2.5)] if name else []
            t += 1.5 + len(clip) / sr
        parts.append(0.001 * rng.standard_normal(int(1.5 * sr)).astype(np.float32))
        stream = np.concatenate(parts)
        views = {w: spotter.embed_views(support[w], SHIFTS_MS) for w in keywords}
        for rule, shifts in rules.items():
            bank = spotter.new_bank()
            for w in keywords:
                v = views[w][:, [SHIFTS_MS.index(s) for s in shifts]]
                bank.add(enrol_keyword(v, w, [p.name for p in support[w]], views_ms=shifts))
            r = match_events(detect_audio(spotter, bank, stream).events, truth)
            totals[rule] += (r["hits"], r["misses"], r["false_alarms"])
    return totals


def main(argv: list[str]) -> int:
    from kws_proto.spot.decision import decide, keyword_distances
    from kws_proto.spot.enrolment import enrol_keyword
    from kws_proto.spot.spotter import KeywordSpotter

    if not PICO.is_dir():
        print(f"{PICO} is absent: set KWS_SHARED_DATA to ../shared/data", file=sys.stderr)
        return 2
    spotter = KeywordSpotter.from_model(argv[0] if argv else "default")
    clips = readable_clips(spotter)
    emb = {w: spotter.embed_views(paths, SHIFTS_MS) for w, paths in clips.items()}
    col = {s: i for i, s in enumerate(SHIFTS_MS)}
    rng = np.random.default_rng(0)
    scores: dict[tuple, list] = {}
    for _ in range(DRAWS):
        keywords = list(rng.choice(WORDS, 3, replace=False))
        order = {w: rng.permutation(PER_WORD) for w in WORDS}
        unknown = np.concatenate([emb[w][order[w][:UNKNOWN]] for w in WORDS if w not in keywords])
        for margin in (1.25, 1.5):
            for rule, views in RULES.items():
                bank = spotter.new_bank()
                for w in keywords:
                    v = emb[w][order[w][:K]][:, [col[s] for s in views]]  # [K, S, d]
                    bank.add(enrol_keyword(v, w, [str(i) for i in range(K)], margin=margin,
                                           views_ms=views))
                for query, shifts in QUERIES.items():
                    cols = [col[s] for s in shifts]
                    accepted = np.mean([np.mean(decide(keyword_distances(
                        bank, emb[w][order[w][K:K + HELD]][:, cols].reshape(-1, emb[w].shape[-1])),
                        bank.thresholds) == j) for j, w in enumerate(keywords)])
                    u = unknown[:, cols].reshape(-1, unknown.shape[-1])
                    rejected = np.mean(decide(keyword_distances(bank, u), bank.thresholds) == -1)
                    scores.setdefault((margin, rule, query), []).append((accepted, rejected))
    print(f"{spotter.model_dir}: {DRAWS} draws, 3 keywords x {K} clips, {HELD} held back each, "
          f"{UNKNOWN} of each other word unknown")
    print(f"{'margin':>6}  {'enrolment':<32}{'queries':<10}{'accepted':>9}{'rejected':>9}"
          f"{'mean':>7}")
    for (margin, rule, query), v in scores.items():
        a, r = 100 * np.mean(v, axis=0)
        print(f"{margin:>6g}  {rule:<32}{query:<10}{a:>9.1f}{r:>9.1f}{(a + r) / 2:>7.1f}")
    print(f"\nconstructed streams ({STREAM_DRAWS} draws, 9 keywords and 3 other words each; "
          "margin 1.25 x):")
    for rule, (hits, misses, false) in stream_scores(spotter, clips).items():
        print(f"  {rule:<32} hits {hits}, misses {misses}, false alarms {false}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
