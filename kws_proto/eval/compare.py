"""Encoders compared on identical test episodes: ``kws-proto compare CONFIG... --out DIR``.

Each config is trained into ``runs/<name>`` (a finished run with the same config is reused, an
interrupted one resumed), then every run — and the MFCC + DTW baseline — is scored on the *same*
fixed episodes of each way/shot setting, drawn once from ``seed`` over the test classes of the
evaluation dataset; so is the frozen Google speech embedding (``gse``, the backbone of
openWakeWord: :mod:`kws_proto.eval.gse`) when its extra is installed, as the peer a user would
pick instead of training anything, and EfficientWord-Net's embedding when asked (``ewn``:
:mod:`kws_proto.eval.ewn`; ``make ewn``; slow, ~0.1 s a clip on two cores); and so is each fused
model given (``fused``: folders of
``kws-proto fuse``, :mod:`kws_proto.eval.fusion`).  Because the episodes are shared, the difference of two models is measured
episode by episode (a paired difference), whose CI is far tighter than comparing two means.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from data_prep.builtin import prepare_data
from kws_proto.config import ExperimentConfig, dump_config, load_config, same_training
from kws_proto.errors import CheckpointError, ConfigError
from kws_proto.eval.evaluate import (
    EvalSetting,
    embedding_table,
    eval_episodes,
    open_eval_data,
    score_episodes,
)
from kws_proto.eval.fusion import fused_tables
from kws_proto.eval.grid import episode_rows
from kws_proto.eval.ewn import available as ewn_available
from kws_proto.eval.frozen import frozen_table
from kws_proto.eval.gse import available, rows_table
from kws_proto.eval.report import write_report
from kws_proto.model.fusion import load_fusion
from kws_proto.model.loading import load_run_network
from kws_proto.model.runs import RunDir
from kws_proto.train.devices import set_feed_cores
from kws_proto.train.state import config_diff

DEFAULT_GRID = (EvalSetting(5, 1), EvalSetting(5, 5), EvalSetting(10, 5))
DTW_NAME = "mfcc-dtw"  # 1-NN DTW on the first run's MFCC (the encoders' own front end)
GSE_NAME = "gse"  # the frozen Google speech embedding on the 1 s crop
EWN_NAME = "ewn"  # EfficientWord-Net's embedding of the same crop
FROZEN_NAMES = {GSE_NAME: "the Google speech embedding", EWN_NAME: "EfficientWord-Net's embedding"}


@dataclass
class ModelScores:
    """Everything the report needs about one compared model."""

    name: str
    encoder: str
    info: dict  # parameters, embedding_dim, train_minutes, ms_per_episode, ms_per_clip
    accuracies: dict = field(default_factory=dict)  # (way, shot) -> [n_episodes]
    confusion: dict = field(default_factory=dict)  # (way, shot) -> (episodes, EpisodeScores)
    projection: tuple | None = None  # (embeddings [n, dim], keyword names [n]) of test clips


def ensure_trained(cfg: ExperimentConfig, runs_root: Path, progress: bool = True) -> RunDir:
    """Train ``cfg`` into ``runs_root/<name>`` unless a finished run of the same config is there.

    Training runs in this process, or in a fresh ``kws-proto train`` process when the config
    asks for thread pools other than those TensorFlow already runs with here
    (``train.feed_cores``; pools are fixed per process).
    """
    from kws_proto.train.trainer import train  # lazy: TensorFlow

    run = RunDir(runs_root / cfg.name)
    resume = False
    if run.config_path.is_file():
        stored = run.read_config()
        if not same_training(stored, cfg):
            raise CheckpointError(
                f"{run.root} holds a run of another config named {cfg.name!r} "
                f"({_differences(stored, cfg)}); rename the config or move the old run away"
            )
        if run.is_finished() and stored == cfg:
            print(f"reusing finished run {run.root}")
            return run
        resume = run.checkpoints.is_dir() or run.is_finished()  # finished: only the head changed
    if set_feed_cores(cfg.train.feed_cores):  # before the data: building caches runs TensorFlow
        train(cfg, prepare_data(cfg, progress=progress), run.root, resume=resume, progress=progress)
    else:
        _train_in_subprocess(cfg, run, resume, progress)
    return run


def retire_stale_run(cfg: ExperimentConfig, runs_root: Path) -> Path | None:
    """Move ``runs_root/<name>`` aside when it holds a run of a config other than ``cfg``.

    For the demo, whose configs change with the package: after an update, ``make demo`` trains
    the new config instead of stopping at the old run. The old run is renamed, never deleted,
    to ``<name>.old-1`` (``-2``, ... if taken); returns that path, or ``None`` when there was
    nothing to move (no run, or a run that trains the same encoder: a config differing only in its
    ``head`` keeps the run, and :func:`ensure_trained` refits the head).
    """
    run = RunDir(Path(runs_root) / cfg.name)
    if not run.config_path.is_file() or same_training(run.read_config(), cfg):
        return None
    n = 1
    while (aside := run.root.with_name(f"{run.root.name}.old-{n}")).exists():
        n += 1
    stored = run.read_config()
    run.root.rename(aside)
    print(f"{run.root} held a run of an older {cfg.name!r} config ({_differences(stored, cfg)}): "
          f"moved to {aside}", flush=True)
    return aside


def _differences(stored: ExperimentConfig, cfg: ExperimentConfig) -> str:
    """``"key: stored -> new; ..."`` of the keys where a stored run's config and ``cfg`` differ."""
    diff = config_diff(stored.to_dict(), cfg.to_dict())
    return "; ".join(diff[:8]) + (f"; and {len(diff) - 8} more" if len(diff) > 8 else "")


def _train_in_subprocess(cfg: ExperimentConfig, run: RunDir, resume: bool, progress: bool) -> None:
    """``kws-proto train`` of ``cfg`` into ``run`` in a child process (its own thread pools)."""
    run.root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=run.root.parent) as tmp:
        path = Path(tmp) / f"{cfg.name}.yaml"
        path.write_text(dump_config(cfg), encoding="utf-8")
        cmd = [sys.executable, "-m", "kws_proto.cli", "train", str(path), "--run-dir", str(run.root)]
        cmd += ["--resume"] * resume + ["--quiet"] * (not progress)
        print(f"training {cfg.name} in a fresh process (train.feed_cores={cfg.train.feed_cores} "
              "needs its own thread pools)", flush=True)
        done = subprocess.run(cmd)
    if done.returncode != 0:
        raise CheckpointError(f"training {cfg.name} into {run.root} failed (exit code "
                              f"{done.returncode}); `kws-proto train` of its config.yaml with "
                              f"--run-dir {run.root} --resume continues it")


def ms_per_clip(net, features: np.ndarray, n: int = 100, repeats: int = 5) -> float:
    """Median milliseconds per clip to embed a batch of ``n`` clips (``training=False``)."""
    batch = np.asarray(features[:n])
    net.embed(batch, training=False)  # warm-up / trace
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        net.embed(batch, training=False).numpy()
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times)) / len(batch)


def compare(
    config_paths: list[Path],
    out: Path,
    runs_root: Path = Path("runs"),
    settings=DEFAULT_GRID,
    eval_data: Path | None = None,
    classes=None,
    seed: int = 0,
    dtw: bool = True,
    speaker_disjoint: bool = False,
    progress: bool = True,
    command: str = "",
    gse: bool | None = None,
    reference: str | None = None,
    fused=(),
    ewn: bool = False,
) -> list[ModelScores]:
    """Train (or reuse) every config, score all on identical episodes, write the report to ``out``.

    ``dtw`` adds the MFCC + DTW baseline; ``gse`` the Google speech embedding (None: when its
    extra is installed); ``ewn`` EfficientWord-Net's (its wheel must be installed: checked before
    any training); ``fused`` fused models' folders; paired differences are taken against
    the model named ``reference`` (default: the Sequential encoder).
    """
    _check_ewn(ewn)
    cfgs = [load_config(p) for p in config_paths]
    names = [c.name for c in cfgs]
    if len(set(names)) != len(names):
        raise ConfigError(f"compared configs need distinct names, got {names}")
    runs = [ensure_trained(c, Path(runs_root), progress) for c in cfgs]

    # the evaluation manifest (and so the episodes) is the same for every model
    base = open_eval_data(cfgs[0], eval_data, speaker_disjoint, progress=progress)
    classes = tuple(classes) if classes else base.splits.test
    episodes = {(s.n_way, s.k_shot): eval_episodes(base, classes, s, seed) for s in settings}

    models = []
    for cfg, run in zip(cfgs, runs):
        _, net = load_run_network(run.root)
        data = (base if cfg.features == cfgs[0].features
                else open_eval_data(cfg, eval_data, speaker_disjoint, progress=progress))
        result = run.read_result()
        m = ModelScores(cfg.name, cfg.model.encoder, {
            **{k: result[k] for k in ("parameters", "embedding_dim", "train_minutes", "ms_per_episode")},
            "ms_per_clip": ms_per_clip(net, data.features),
        })
        table = embedding_table(net, data.features, sum(episodes.values(), []))  # all cells at once
        for key, eps in episodes.items():
            scores = score_episodes(table, eps)
            m.accuracies[key] = scores.accuracies
            m.confusion[key] = (eps, scores)
        rows = np.unique(np.concatenate([e.query.ravel() for e in eps]))  # last setting's queries
        m.projection = (table[rows], [data.manifest.clips[i].keyword for i in rows])
        models.append(m)
        print(f"scored {cfg.name}")
    if gse is None:
        gse = available()
    if gse:
        models.append(_frozen_scores(GSE_NAME, base, episodes))
    if ewn:
        models.append(_frozen_scores(EWN_NAME, base, episodes))
    models += [_fused_scores(Path(f), base, episodes, progress) for f in fused]
    if dtw:
        models.append(_dtw_scores(base, episodes))
    data_desc = f"{eval_data or cfgs[0].data.dataset}{' (speaker-disjoint support/query)' if speaker_disjoint else ''}"
    write_report(out, models, runs, settings, classes, seed, data_desc, command, reference)
    return models


def _check_ewn(ewn: bool) -> None:
    """Refuse ``ewn`` before anything trains when EfficientWord-Net's wheel is not installed."""
    if ewn and not ewn_available():
        raise ConfigError("EfficientWord-Net is not installed: `make ewn` installs its wheel "
                          "(the model ships in it), then compare again")


def _dtw_scores(data, episodes) -> ModelScores:
    from kws_proto.eval.dtw import dtw_score_sets  # lazy: SciPy, numba

    m = ModelScores(DTW_NAME, "dtw", {"parameters": 0, "embedding_dim": 0, "train_minutes": 0.0,
                                      "ms_per_episode": float("nan"), "ms_per_clip": float("nan")})
    t0 = time.perf_counter()
    # its measured-best setting (kws_proto.eval.dtw); a pair the cells share is computed once
    cells = dtw_score_sets(data.features, list(episodes.values()))
    for (key, eps), scores in zip(episodes.items(), cells):
        m.accuracies[key] = scores.accuracies
        m.confusion[key] = (eps, scores)
    m.info["score_seconds"] = round(time.perf_counter() - t0, 1)
    print("scored the MFCC + DTW baseline")
    return m


def _frozen_scores(name: str, data, episodes) -> ModelScores:
    """A frozen embedding (``gse``, ``ewn``) on ``episodes``: its table of the clips they use
    (the Google speech embedding's on the evaluation data's own crop, ``rows_table``)."""
    rows = episode_rows([e for eps in episodes.values() for e in eps])
    t0 = time.perf_counter()
    table = (rows_table(data.manifest, rows, data.feature_config) if name == GSE_NAME
             else frozen_table(name, data.manifest, progress=False, rows=rows))
    ms = 1000 * (time.perf_counter() - t0) / max(1, len(rows))
    m = ModelScores(name, name, {"parameters": None, "embedding_dim": int(table.shape[1]),
                                 "train_minutes": 0.0, "ms_per_episode": float("nan"),
                                 "ms_per_clip": ms})
    for key, eps in episodes.items():
        scores = score_episodes(table, eps)
        m.accuracies[key] = scores.accuracies
        m.confusion[key] = (eps, scores)
    print(f"scored {FROZEN_NAMES[name]} (frozen)")
    return m


def _fused_scores(path: Path, data, episodes, progress: bool = True) -> ModelScores:
    """A fused model on ``episodes`` of ``data``: its members' tables of the same manifest."""
    fusion = load_fusion(path)
    t0 = time.perf_counter()
    own, table_for = fused_tables(fusion, data.manifest.root, data.speaker_disjoint, progress)
    if len(own.manifest) != len(data.manifest):
        raise ConfigError(f"{path}: its members read {len(own.manifest)} clips of "
                          f"{data.manifest.root}, the compared runs {len(data.manifest)}")
    every = [e for eps in episodes.values() for e in eps]
    table = table_for(every)  # every row any setting uses, embedded once
    rows = episode_rows(every)
    ms = 1000 * (time.perf_counter() - t0) / max(1, len(rows))
    m = ModelScores(path.name, "fusion", {"parameters": None, "embedding_dim": fusion.dim,
                                          "train_minutes": 0.0, "ms_per_episode": float("nan"),
                                          "ms_per_clip": ms})
    for key, eps in episodes.items():
        scores = score_episodes(table, eps)
        m.accuracies[key] = scores.accuracies
        m.confusion[key] = (eps, scores)
    print(f"scored the fused model {path}")
    return m
