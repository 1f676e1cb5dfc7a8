"""A run directory: what a training run writes, and how later commands read it back.

Layout::

    RUN/config.yaml         the full ExperimentConfig (written at start)
    RUN/splits.json         the dataset's class split used by the run
    RUN/checkpoints/        tf.train.CheckpointManager: model, optimizer, step, early-stop state
    RUN/best.weights.h5     encoder weights with the best validation accuracy so far
    RUN/log.jsonl           one JSON object per validation (and the final summary)
    RUN/tb/                 TensorBoard scalars
    RUN/head.npz            the embedding head fitted after training (``head.kind`` not
                            ``none``; :mod:`kws_proto.model.head`)
    RUN/result.json         written last, when training has finished: the run is complete
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from kws_proto.config import ExperimentConfig, dump_config, paths_for_run, paths_from_run

from kws_proto.errors import CheckpointError
from kws_proto.util.atomic import atomic_write_text


@dataclass(frozen=True)
class RunDir:
    """The files of one run directory ``root`` (a ``str`` or a ``Path``)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def best_weights(self) -> Path:
        return self.root / "best.weights.h5"

    @property
    def head_path(self) -> Path:
        return self.root / "head.npz"

    @property
    def log_path(self) -> Path:
        return self.root / "log.jsonl"

    @property
    def result_path(self) -> Path:
        return self.root / "result.json"

    @property
    def splits_path(self) -> Path:
        return self.root / "splits.json"

    def write_config(self, cfg: ExperimentConfig) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.config_path, dump_config(paths_for_run(cfg, self.root)))

    def read_config(self) -> ExperimentConfig:
        if not self.root.is_dir():
            raise CheckpointError(f"{self.root}: no such run directory")
        if not self.config_path.is_file():
            raise CheckpointError(f"{self.root}: not a run directory (no config.yaml)")
        raw = yaml.safe_load(self.config_path.read_text(encoding="utf-8"))
        return paths_from_run(ExperimentConfig.from_dict(raw), self.root)

    def is_finished(self) -> bool:
        return self.result_path.is_file() and self.best_weights.is_file()

    def read_result(self) -> dict:
        if not self.result_path.is_file():
            raise CheckpointError(f"{self.root}: training has not finished (no result.json)")
        return json.loads(self.result_path.read_text(encoding="utf-8"))

    def write_result(self, result: dict) -> None:
        atomic_write_text(self.result_path, json.dumps(result, indent=2) + "\n")

    def append_log(self, record: dict) -> None:
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def truncate_log(self, step: int) -> None:
        """Drop validation records after ``step`` (written after the checkpoint a resume starts from)."""
        kept = [r for r in self.read_log() if r.get("step", step) <= step and "final" not in r]
        atomic_write_text(self.log_path, "".join(json.dumps(r) + "\n" for r in kept))

    def read_log(self) -> list[dict]:
        if not self.log_path.is_file():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.strip()]
