"""``make pretrained``: train the pretrained-encoder recipe and ship it inside the package.

``python -m kws_proto.publish [CONFIG] [--runs DIR] [--out DIR]`` (default
``experiments/configs/pretrained.yaml``):

1. trains the config into ``runs/pretrained/<name>`` (resumable: a rerun continues from the last
   checkpoint, a finished run is reused; one that differs only in its ``head`` gets the head
   refitted, not retrained);
2. scores it cross-corpus on the real speech of ``../shared/data`` when present (FSDD digits
   with speaker-disjoint support and query; the Picovoice keywords) and on its own test split,
   1,000 fixed 5-way episodes per shot;
3. writes ``kws_proto/model/pretrained/protores_synth/``: ``config.yaml`` (paths relative to the repository),
   ``best.weights.h5``, ``head.npz`` (the embedding head, when the config has one),
   ``splits.json``, ``record.json`` — command, seed, data, machine,
   time, git commit, training minutes, the scores, the SHA-256 of the weights, the weights
   fingerprint banks record (``weights_fingerprint``) and the embedding fingerprint (embeddings
   of a fixed probe batch) that the tests check — and the exported ``embedder-<fp>.tflite``
   with its metadata, which the keyword commands run without TensorFlow
   (:mod:`kws_proto.spot.backends`);
4. trains the head on the Google speech embedding's windows (:mod:`kws_proto.model.gse_head`)
   from ``experiments/configs/gse_head/gse_head.yaml`` into ``kws_proto/model/pretrained/gse_head/``
   unless the head there was trained from that config as it reads now (``--head-only``: only
   this step, always trained);
5. with ``--centre-data DIR`` (``make pretrained`` passes the centre half of speechocean762's
   speakers, ``experiments/fusion_split.py``), fuses the package's ``default`` again: the trained
   member, the frozen Google speech embedding and its head, each centred on its mean over 1,000
   clips of DIR (seed 0), weights 1 (:mod:`kws_proto.model.fusion`); ``kws_proto/model/pretrained/
   default/`` holds ``fusion.json`` and ``record.json`` (command, centre corpus, commit, machine,
   the scores on the real speech present) and ``background.npz``: every third clip of DIR
   (sorted), joined, embedded by the fused model window by window at the detector's hop, float16
   — the cohort of the default enrolment, its keywords normalised by ``SHIPPED_NORM`` and cut at
   ``SHIPPED_LEVEL`` (:mod:`kws_proto.spot.enrolment`, "The default rule"; measured:
   experiments/spotting.md, "The shipped cohort" and "The cohort's mean as the unit") — and
   ``neighbours.npz``: the speech of 300 clips of DIR (a seeded draw), 16-bit FLAC, the other
   words the default enrolment says each support clip between (:mod:`kws_proto.spot.context`).
   ``--fuse-only`` skips steps 1–4; ``--background-only`` only builds that background and those
   neighbours again into the shipped ``default``.

Every file is written aside and renamed into place, the folder last, so an interrupted publish
never leaves a half-written model.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import shutil
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from kws_proto.config import dump_config, load_config
from kws_proto.eval.compare import ensure_trained
from kws_proto.eval.evaluate import evaluate_run, grid
from kws_proto.eval.suites import REAL
from kws_proto.model.fusion import Fusion, save_fusion
from kws_proto.model.head import read_head
from kws_proto.model.loading import load_run_network, weights_fingerprint
from kws_proto.model.pretrained import DEFAULT, MODELS_DIR, TRAINED, weights_sha256
from kws_proto.model.runs import RunDir
from kws_proto.spot.backends import write_export
from kws_proto.spot.cohort import RATIO
from kws_proto.spot.context import NEIGHBOURS, draw_neighbours, save_neighbours
from kws_proto.spot.context import SHIPPED as NEIGHBOURS_FILE
from kws_proto.util.atomic import atomic_write_text
from kws_proto.util.provenance import git_commit
from kws_proto.util.quiet_tf import quiet_tensorflow

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "experiments" / "configs" / "pretrained.yaml"
PROBE_SEED = 1234
PROBE_CLIPS = 4


def probe_batch(shape: tuple[int, int]) -> np.ndarray:
    """The fixed input of the embedding fingerprint.

    Returns
    -------
    x : np.ndarray [shape=(4, frames, n_mfcc), dtype=float32]
        Standard-normal values from a fixed seed (like CMN-normalised MFCC in scale).
    """
    rng = np.random.default_rng(PROBE_SEED)
    return rng.standard_normal((PROBE_CLIPS, *shape)).astype(np.float32)


def embedding_fingerprint(net, shape: tuple[int, int]) -> list[list[float]]:
    """``net``'s embeddings of :func:`probe_batch` (``training=False``), as nested lists."""
    return net.embed(probe_batch(shape), training=False).numpy().astype(float).round(6).tolist()


HEAD_CONFIG = REPO / "experiments" / "configs" / "gse_head" / "gse_head.yaml"
FUSED_MEMBERS = (TRAINED, "gse", "gse-head")  # the shipped default: the trained member, the frozen
# speech embedding and the head trained on its windows
FUSED_CLIPS = 1000  # centre-corpus clips each member's centre is the mean of
COHORT_EVERY = 3  # every third centre-corpus clip makes the default's shipped background
#: The normalisation and cohort level of the default's shipped background, the default
#: enrolment's cut: the cohort's mean as the unit, and the loosest eighth at which its keywords
#: (with their twins in context) stay at <= 10 false alarms an hour on Picovoice, the sentences
#: and the word streams (experiments/spotting.md, "The cohort's mean as the unit").
SHIPPED_NORM = RATIO
SHIPPED_LEVEL = -3.5


def cross_corpus_scores(run_dir: Path, episodes: int = 1000, own_split: bool = True) -> dict:
    """5-way 1/5-shot accuracy (mean, ci95) on each present real-speech set and (``own_split``)
    the run's own test split."""
    settings = grid([5], [1, 5], 15, episodes)
    out = {}
    for suite in REAL:
        if not suite.available():
            print(f"(not scoring {suite.name}: {suite.source} is absent)")
            continue
        rows = evaluate_run(run_dir, settings, data_dir=suite.dataset(), classes=suite.classes,
                            speaker_disjoint=suite.speaker_disjoint)
        out[suite.name] = {f"5w{r['k_shot']}s": [round(r["mean"], 4), round(r["ci95"], 4)] for r in rows}
    if not own_split:
        return out
    rows = evaluate_run(run_dir, settings)
    out["own_test_split"] = {f"5w{r['k_shot']}s": [round(r["mean"], 4), round(r["ci95"], 4)]
                             for r in rows}
    return out


def _relative(path: str) -> str:
    """``path`` relative to the repository when inside it (the shipped config names no machine)."""
    try:
        return str(Path(os.path.abspath(path)).relative_to(REPO))  # a linked folder keeps its name
    except ValueError:
        return str(path)


def _machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor(),
            "cpus": os.cpu_count(), "python": sys.version.split()[0],
            "tensorflow": _version("tensorflow"), "keras": _version("keras")}


def _swap_in(tmp: Path, out: Path) -> None:
    """Rename the finished folder ``tmp`` to ``out``, replacing what was there."""
    old = out.with_name(f".old{os.getpid()}.{out.name}")
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "absent"


def _describe_training_data(data, words: str) -> str:
    """The built-in corpus a run trained on, in words, for the record."""
    flite = f" + {data.synth_flite_speakers} Flite voices" if data.synth_flite_speakers else ""
    return (f"built-in synthetic corpus ({data.synth_words} words x {data.synth_speakers} eSpeak NG "
            f"voices{flite}, synth_seed {data.synth_seed}, vocabulary {words or 'data_prep/words.py'})")


def publish(run_dir: Path, out: Path, command: str, scores: dict) -> Path:
    """Copy the finished run ``run_dir`` into the model folder ``out`` with its record."""
    from kws_proto.spot.export import TFEmbedder  # lazy: TensorFlow

    run = RunDir(run_dir)
    cfg, net = load_run_network(run_dir)
    dataset = _relative(cfg.data.dataset)
    words = _relative(cfg.data.synth_words_file) if cfg.data.synth_words_file else ""
    shipped = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, dataset=dataset,
                                                                synth_words_file=words))
    result = run.read_result() if run.is_finished() else {}
    record = {
        "command": command,
        "config": shipped.to_dict(),
        "seed": cfg.train.seed,
        "data": {"train": _describe_training_data(cfg.data, words) if cfg.data.source == "synth" else dataset,
                 "real_speech_used_for_training": "none"},
        "machine": _machine(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "training": result,
        "scores": scores,
        "head": read_head(run.head_path)[1] if cfg.head.kind != "none" else {"kind": "none"},
        "weights_sha256": weights_sha256(run.best_weights),
        "weights_fingerprint": weights_fingerprint(net.encoder),
        "fingerprint": {"probe_seed": PROBE_SEED, "probe_clips": PROBE_CLIPS, "atol": 1e-4,
                        "embeddings": embedding_fingerprint(net, cfg.features.shape)},
    }
    tmp = out.with_name(f".tmp{os.getpid()}.{out.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shutil.copyfile(run.best_weights, tmp / "best.weights.h5")
    if run.splits_path.is_file():
        shutil.copyfile(run.splits_path, tmp / "splits.json")
    if cfg.head.kind != "none":
        shutil.copyfile(run.head_path, tmp / run.head_path.name)
    (tmp / "config.yaml").write_text(dump_config(shipped))
    (tmp / "record.json").write_text(json.dumps(record, indent=2) + "\n")
    write_export(TFEmbedder(tmp), name=out.name)
    _swap_in(tmp, out)
    return out


def _shipped_head_config(cfg) -> dict:
    """The head's config as its record stores it: paths relative to the repository."""
    shipped = cfg.to_dict()
    for c in shipped["corpora"]:
        c["dataset"] = _relative(c["dataset"])
        c["synth_words_file"] = _relative(c["synth_words_file"]) if c["synth_words_file"] else ""
    return shipped


def gse_head_is_current(config_path: Path, out: Path) -> bool:
    """Whether the head in the folder ``out`` was trained from ``config_path`` as it reads now
    (its record's config equal to it); ``make pretrained`` then reuses it instead of training it
    again."""
    from kws_proto.config.gse_head import GSEHeadConfig, load_gse_head_config  # lazy: with its step

    try:
        stored = json.loads((Path(out) / "record.json").read_text())["config"]
    except (OSError, ValueError, KeyError):
        return False
    current = _shipped_head_config(load_gse_head_config(config_path))
    defaults = GSEHeadConfig().to_dict()  # fields added since the head was trained: their defaults
    return {**{k: defaults[k] for k in current.keys() - stored.keys()}, **stored} == current


def publish_gse_head(config_path: Path, out: Path, command: str) -> Path:
    """Train the head of ``config_path`` (:mod:`kws_proto.train.gse_head`; its corpora built
    first when missing) into the folder ``out``: ``gse_head.npz`` with its record (config,
    corpus, command, commit, machine, digest)."""
    from data_prep.adhoc import as_dataset  # lazy: corpus indexing
    from data_prep.builtin import ensure_dataset  # lazy: the synthesiser
    from kws_proto.config.gse_head import load_gse_head_config  # lazy: with its step
    from kws_proto.model.gse_head import FILE, load_head, save_head  # lazy: with its step
    from kws_proto.train.gse_head import train_gse_head, training_words  # lazy: TensorFlow

    cfg = load_gse_head_config(config_path)
    roots = [ensure_dataset(c) if c.source == "synth" else as_dataset(c.dataset) for c in cfg.corpora]
    windows, labels, words = training_words(roots, cfg)
    head = train_gse_head(windows, labels, cfg)
    shipped = _shipped_head_config(cfg)
    record = {**head.record, "config": shipped, "command": command,
              "data": {"clips": int(len(labels)), "words": len(words),
                       "real_speech_used_for_training": "none" if all(
                           c.source == "synth" for c in cfg.corpora) else "see config.corpora"},
              "machine": _machine(), "git_commit": git_commit(),
              "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    tmp = out.with_name(f".tmp{os.getpid()}.{out.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    saved = load_head(save_head(dataclasses.replace(head, record=record), tmp / FILE))
    (tmp / "record.json").write_text(json.dumps({**record, "digest": saved.digest}, indent=2) + "\n")
    _swap_in(tmp, out)
    return out


def publish_fused(centre_data: Path, out: Path, command: str, members=FUSED_MEMBERS,
                  episodes: int = 1000) -> Path:
    """Fuse ``members`` (:func:`kws_proto.spot.fusion.fuse_models`, centres from
    :data:`FUSED_CLIPS` clips of ``centre_data``, seed 0, weights 1) into the folder ``out`` with
    a ``record.json``; scores it on the real speech present."""
    from kws_proto.spot.fusion import fuse_models  # lazy: TensorFlow, LiteRT

    tmp = out.with_name(f".tmp{os.getpid()}.{out.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    fusion = fuse_models(list(members), centre_data, tmp, clips=FUSED_CLIPS, seed=0)
    fusion = Fusion(fusion.members, {**fusion.centre_data, "path": _relative(fusion.centre_data["path"])})
    save_fusion(fusion, tmp)  # the shipped folder names no machine's paths
    commit = git_commit()  # the code, before the files it writes change the tree
    background = ship_background(tmp, centre_data, commit=commit)
    neighbours = ship_neighbours(tmp, centre_data, commit=commit)
    record = {
        "command": command,
        "members": [{"model": m.model, "weights_fingerprint": m.fingerprint, "weight": m.weight,
                     "dim": m.dim} for m in fusion.members],
        "centre_data": fusion.centre_data,
        "fingerprint": fusion.fingerprint,
        "machine": _machine(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "scores": cross_corpus_scores(tmp, episodes, own_split=False),
        "background": background,
        "neighbours": neighbours,
    }
    (tmp / "record.json").write_text(json.dumps(record, indent=2) + "\n")
    _swap_in(tmp, out)
    return out


def ship_background(folder: Path, data: Path, *, commit: str, every: int = COHORT_EVERY) -> dict:
    """Write ``folder/background.npz`` (atomically): every ``every``-th audio file of ``data``
    (sorted), joined into one recording, embedded by the model in ``folder`` at the detector's
    hop, stored as float16 (:func:`kws_proto.spot.background.save_background`); returns its
    record (source, clips, windows, hours, digest, and ``commit``: the code's, taken by the
    caller before any file it writes changes the tree)."""
    from kws_proto.spot.background import (SHIPPED, build_background,  # lazy: TensorFlow
                                           load_background, save_background)
    from kws_proto.spot.spotter import KeywordSpotter, audio_files  # lazy: TensorFlow, LiteRT

    found = audio_files([data])
    files = found[::every]
    source = f"{_relative(str(data))}: 1 in {every} of its {len(found)} clips (sorted)"
    bg = build_background(KeywordSpotter.from_model(folder), files, source=source, join=True)
    bg = dataclasses.replace(bg, cohort_level=SHIPPED_LEVEL, cohort_norm=SHIPPED_NORM)
    bg = load_background(save_background(bg, folder / SHIPPED, half=True))
    return {"file": SHIPPED, "source": bg.source, "clips": len(files), "windows": len(bg),
            "hours": round(bg.hours, 6), "hop": bg.hop, "cohort_norm": bg.cohort_norm,
            "cohort_level": bg.cohort_level,
            "embeddings": "float16",
            "digest": bg.digest, "git_commit": commit}


NEIGHBOURS_LICENCE = ("speechocean762 (Zhang et al. 2021, https://www.openslr.org/101/): free for "
                      "commercial and non-commercial use, Apache-2.0 on its dataset card")


def ship_neighbours(folder: Path, data: Path, *, commit: str, n: int = NEIGHBOURS, seed: int = 0,
                    licence: str = NEIGHBOURS_LICENCE) -> dict:
    """Write ``folder/neighbours.npz`` (atomically): the speech of ``n`` audio files of ``data``
    (a seeded draw of them sorted, :func:`kws_proto.spot.context.draw_neighbours`), each cut
    as the model's front end cuts a clip, for the default enrolment's views in context
    (:func:`kws_proto.spot.context.save_neighbours`); returns its record, with the ``licence``
    of the recordings (``make pretrained``'s: speechocean762's) and ``commit`` (as
    :func:`ship_background`'s)."""
    from kws_proto.spot.spotter import KeywordSpotter, audio_files  # lazy: TensorFlow, LiteRT

    found = audio_files([data])
    files = draw_neighbours(found, n, seed)
    spotter = KeywordSpotter.from_model(folder)
    source = f"{_relative(str(data))}: {len(files)} of its {len(found)} clips (seed {seed})"
    path = save_neighbours(spotter.load_clips(files), spotter.features.sample_rate,
                           folder / NEIGHBOURS_FILE, source)
    return {"file": NEIGHBOURS_FILE, "source": source, "clips": len(files),
            "sample_rate": spotter.features.sample_rate, "bytes": path.stat().st_size,
            "licence": licence, "git_commit": commit}


def _ship_enrolment_data(out: Path, centre_data: Path) -> int:
    """``--background-only``: the background and neighbours of ``out`` built again from
    ``centre_data``, its record updated."""
    commit = git_commit()  # the code, before the files it writes change the tree
    record = {"background": ship_background(out, centre_data, commit=commit),
              "neighbours": ship_neighbours(out, centre_data, commit=commit)}
    path = out / "record.json"
    atomic_write_text(path, json.dumps({**json.loads(path.read_text()), **record}, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    quiet_tensorflow()  # TensorFlow's start-up chatter off the terminal

    p = argparse.ArgumentParser(prog="python -m kws_proto.publish", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", nargs="?", type=Path, default=DEFAULT_CONFIG)
    p.add_argument("--runs", type=Path, default=Path("runs/pretrained"))
    p.add_argument("--out", type=Path, default=MODELS_DIR / TRAINED)
    p.add_argument("--episodes", type=int, default=1000, help="test episodes per setting")
    p.add_argument("--centre-data", type=Path, metavar="DIR",
                   help="also fuse the package's default (the shipped trained member, gse and "
                        "gse-head) with centres from this folder of clips")
    p.add_argument("--fused-out", type=Path, default=MODELS_DIR / DEFAULT)
    p.add_argument("--fuse-only", action="store_true",
                   help="only fuse the default again (needs --centre-data)")
    p.add_argument("--head-config", type=Path, default=HEAD_CONFIG,
                   help="the config of the head on the speech embedding (default: %(default)s)")
    p.add_argument("--head-out", type=Path, default=MODELS_DIR / "gse_head")
    p.add_argument("--head-only", action="store_true",
                   help="only train the head on the speech embedding again")
    p.add_argument("--background-only", action="store_true",
                   help="only build the default's shipped background and neighbours again, from "
                        "--centre-data")
    args = p.parse_args(argv)
    if (args.fuse_only or args.background_only) and args.centre_data is None:
        p.error("--fuse-only and --background-only need --centre-data DIR")
    if args.centre_data is not None and not args.centre_data.is_dir():
        p.error(f"--centre-data {args.centre_data}: not a folder")


    t0 = time.perf_counter()
    if args.background_only:
        return _ship_enrolment_data(args.fused_out, args.centre_data)
    command = "make pretrained" if args.config.resolve() == DEFAULT_CONFIG and not args.fuse_only \
        and not args.head_only \
        else "python -m kws_proto.publish " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.head_only:
        print(f"published {publish_gse_head(args.head_config, args.head_out, command)}")
        return 0
    if not args.fuse_only:
        cfg = load_config(args.config)
        run = ensure_trained(cfg, args.runs)
        scores = cross_corpus_scores(run.root, args.episodes)
        out = publish(run.root, args.out, command, scores)
        print(json.dumps(scores, indent=2))
        print(f"published {out} in {(time.perf_counter() - t0) / 60:.1f} min")
        if gse_head_is_current(args.head_config, args.head_out):
            print(f"reusing {args.head_out}: trained from {args.head_config} as it reads now")
        else:
            print(f"published {publish_gse_head(args.head_config, args.head_out, command)}")
    if args.centre_data is not None:
        out = publish_fused(args.centre_data, args.fused_out, command, episodes=args.episodes)
        print(json.dumps(json.loads((out / "record.json").read_text())["scores"], indent=2))
        print(f"published {out} in {(time.perf_counter() - t0) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
