"""An exported ``.tflite`` embedder run without TensorFlow: the LiteRT interpreter.

``ai_edge_litert`` (the ``lite`` extra: ``pip install -e '.[lite]'``) is the lightweight
interpreter of TFLite files; importing it takes ~0.1 s where TensorFlow takes seconds.  This
module imports neither TensorFlow nor Keras: only :class:`TFLiteEmbedder`'s fallback, when
LiteRT is absent, reaches for ``tf.lite.Interpreter``.

An exported file ``OUT.tflite`` has its metadata beside it in ``OUT.tflite.json`` (written by
:func:`kws_proto.spot.export.export_tflite`): the FeatureConfig, the weights fingerprint, the
embedding size.
"""

from __future__ import annotations

import importlib.util
import json
import os
import warnings
from pathlib import Path

import numpy as np

from kws_proto.errors import CheckpointError, ConfigError

BATCH_SIZE = 64  # windows per call: bounded memory (and, in TensorFlow, one trace)


def litert_available() -> bool:
    """True when the LiteRT interpreter (``ai_edge_litert``) is installed."""
    return importlib.util.find_spec("ai_edge_litert") is not None


def embed_in_batches(fn, audio: np.ndarray, batch_size: int = BATCH_SIZE) -> np.ndarray:
    """Apply ``fn`` (``[b, n] -> [b, d]``) to ``audio [n_clips, n]`` in batches of ``batch_size``."""
    out = [np.asarray(fn(np.ascontiguousarray(audio[i:i + batch_size], dtype=np.float32)))
           for i in range(0, len(audio), batch_size)]
    if not out:
        raise ConfigError("no audio to embed (0 clips)")
    return np.concatenate(out).astype(np.float32, copy=False)


def metadata_path(path: str | os.PathLike) -> Path:
    """Where the metadata of the exported file ``path`` lives: ``path`` + ``.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def read_metadata(path: str | os.PathLike) -> dict:
    """The metadata of the exported ``.tflite`` file ``path``."""
    meta = metadata_path(path)
    try:
        return json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{meta}: unreadable export metadata ({e})") from e


def _interpreter(path: str, num_threads: int | None):
    """LiteRT's interpreter when ``ai_edge_litert`` is installed, else ``tf.lite.Interpreter``."""
    try:
        from ai_edge_litert.interpreter import Interpreter  # lazy: optional extra `lite`
    except ImportError:
        import tensorflow as tf  # lazy: TensorFlow

        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings():  # tf.lite.Interpreter warns that LiteRT replaces it
        warnings.simplefilter("ignore", UserWarning)
        return Interpreter(model_path=path, num_threads=num_threads)


class TFLiteEmbedder:
    """An exported ``.tflite`` file run by the TFLite interpreter; ``self(audio) -> [n, d]``.

    The input is resized to each batch's size; ``num_threads`` as in ``tf.lite.Interpreter``
    (None: the interpreter's default).  ``fingerprint`` and ``embedding_dim`` come from the
    metadata, so a bank can be checked against it without TensorFlow.
    """

    backend = "lite"

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None):
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"{path}: no such TFLite file")
        self.path = path
        self.metadata = read_metadata(path)
        self.fingerprint = self.metadata["fingerprint"]
        self.embedding_dim = int(self.metadata["embedding_dim"])
        self._interp = _interpreter(str(path), num_threads)
        self._in = self._interp.get_input_details()[0]["index"]
        self._out = self._interp.get_output_details()[0]["index"]
        self._batch = None

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if batch.shape[0] != self._batch:
            self._interp.resize_tensor_input(self._in, list(batch.shape))
            self._interp.allocate_tensors()
            self._batch = batch.shape[0]
        self._interp.set_tensor(self._in, batch)
        self._interp.invoke()
        return self._interp.get_tensor(self._out).copy()

    def __call__(self, audio: np.ndarray, batch_size: int = BATCH_SIZE) -> np.ndarray:
        return embed_in_batches(self._run, audio, batch_size)
