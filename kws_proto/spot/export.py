"""Raw audio in, embedding out: the in-graph front end plus encoder, and its export.

:class:`EmbeddingGraph` is one ``tf.function`` of ``features.mfcc_batch`` (the TensorFlow path
of the front end, which agrees with librosa to < 1e-3) followed by the encoder with
``training=False``; :class:`TFEmbedder` (a run's network in it) is the spotter's TensorFlow
backend (:mod:`kws_proto.spot.backends`).  The SavedModel is that same module, and the TFLite
file its twin with the spectrum taken as a DFT, which :class:`~kws_proto.spot.lite.TFLiteEmbedder`
runs without TensorFlow:

- SavedModel: ``OUT/`` with the signature ``serving_default(audio [None, num_samples] float32)
  -> {"embedding": [None, d] float32}`` and the method ``embed``;
- TFLite: one ``.tflite`` file with the same signature, TFLite built-in ops only; its spectrum
  is a DFT by matrix products (``mfcc_batch(..., spectrum="dft")``: TFLite's FFT needs a
  power-of-two length).

Beside each goes its metadata (``OUT/kws_export.json``, ``OUT.tflite.json``): the FeatureConfig,
the encoder's weight fingerprint and the embedding size, so a bank can be matched to it.  Parity with the Python path
(``tests/test_export.py``): max abs embedding difference <= :data:`PARITY_TOLERANCE` relative to
the largest embedding magnitude, and identical keyword decisions.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from kws_proto.audio.features import SPECTRA, FeatureConfig, mfcc_batch
from kws_proto.errors import CheckpointError, ConfigError
from kws_proto.model.loading import load_run_network, weights_fingerprint
from kws_proto.spot.lite import BATCH_SIZE, TFLiteEmbedder, embed_in_batches, metadata_path
from kws_proto.util.atomic import atomic_path, atomic_write_bytes, atomic_write_text

FORMATS = ("savedmodel", "tflite")
METADATA = "kws_export.json"
#: Max abs difference of exported embeddings from the Python path, relative to max |embedding|.
PARITY_TOLERANCE = 1e-3


class EmbeddingGraph(tf.Module):
    """``embed(audio [batch, num_samples]) -> [batch, d]``: MFCC in-graph, then the encoder.

    Parameters
    ----------
    encoder : keras.Model
        Maps MFCC ``[batch, num_frames, n_mfcc]`` to ``[batch, d]``; run with ``training=False``
        (BatchNorm on its moving averages), so each embedding depends on its clip alone.
    features : FeatureConfig
        The run's front end.
    spectrum : {"fft", "dft"}
        How :func:`kws_proto.audio.features.mfcc_batch` takes the power spectrum: ``"fft"`` for the
        Python path and the SavedModel, ``"dft"`` (matrix products) for the TFLite export.
    """

    def __init__(self, encoder, features: FeatureConfig, spectrum: str = "fft"):
        super().__init__(name="kws_embedding")
        if spectrum not in SPECTRA:
            raise ConfigError(f"spectrum={spectrum!r} must be one of {SPECTRA}")
        self.encoder = encoder
        self._features = features
        self._spectrum = spectrum
        spec = tf.TensorSpec([None, features.num_samples], tf.float32, name="audio")
        self.embed = tf.function(self._embed, input_signature=[spec], autograph=False)
        self.serve = tf.function(lambda audio: {"embedding": self._embed(audio)},
                                 input_signature=[spec], autograph=False)

    def _embed(self, audio):
        x = mfcc_batch(audio, self._features, spectrum=self._spectrum)  # [B, num_frames, n_mfcc]
        return self.encoder(x, training=False)  # [B, d]

    def __call__(self, audio: np.ndarray, batch_size: int = BATCH_SIZE) -> np.ndarray:
        """Embeddings of ``audio [n, num_samples]`` in batches, as float32 ``[n, d]``."""
        return embed_in_batches(lambda b: self.embed(b).numpy(), audio, batch_size)


class TFEmbedder:
    """The embedding backend on TensorFlow: a run's network in an :class:`EmbeddingGraph`.

    ``self(audio [n, num_samples]) -> [n, d]``; ``fingerprint`` is the weights fingerprint
    (:func:`kws_proto.model.loading.weights_fingerprint`), computed from the loaded weights.
    """

    backend = "tf"

    def __init__(self, model_dir: str | os.PathLike):
        self.model_dir = Path(model_dir).resolve()
        self.config, self.network = load_run_network(self.model_dir)
        self.features = self.config.features
        self.distance = self.config.model.distance
        self.fingerprint = weights_fingerprint(self.network.encoder)
        self.graph = EmbeddingGraph(self.network.encoder, self.features)
        probe = np.zeros((1, self.features.num_samples), np.float32)
        self.embedding_dim = int(self.graph(probe).shape[-1])

    def __call__(self, audio: np.ndarray, batch_size: int = BATCH_SIZE) -> np.ndarray:
        return self.graph(audio, batch_size)


def _metadata(source, extra: dict | None = None) -> dict:
    """What an export records: front end, fingerprint, size, ``extra`` (e.g. its sources)."""
    return {"features": source.features.to_dict(), "fingerprint": source.fingerprint,
            "embedding_dim": source.embedding_dim, "distance": source.distance,
            "model": str(source.model_dir), "input": [None, source.features.num_samples],
            "sample_rate": source.features.sample_rate, **(extra or {})}


def _check_out(out: Path, force: bool) -> None:
    if out.exists() and not force:
        raise ConfigError(f"{out}: already exists; pass --force (force=True) to overwrite it")


def export_savedmodel(spotter, out: str | os.PathLike, force: bool = False) -> Path:
    """Write ``spotter``'s embedding graph as a SavedModel folder ``out`` (atomically renamed)."""
    out = Path(out)
    _check_out(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and not out.is_dir():
        out.unlink()
    with atomic_path(out, replace_dir=True) as tmp:
        graph = spotter.graph
        tf.saved_model.save(graph, str(tmp), signatures={
            "serving_default": graph.serve.get_concrete_function()})
        (tmp / METADATA).write_text(json.dumps(_metadata(spotter), indent=2) + "\n")
    return out


@contextlib.contextmanager
def _without_absl_notice(text: str):
    """Drop the Python absl log records containing ``text`` while the block runs (all others pass)."""
    class _Drop(logging.Filter):
        def filter(self, record):
            return text not in record.getMessage()

    log, drop = logging.getLogger("absl"), _Drop()
    log.addFilter(drop)
    try:
        yield
    finally:
        log.removeFilter(drop)


def export_tflite(spotter, out: str | os.PathLike, force: bool = False,
                  extra: dict | None = None) -> Path:
    """Write ``spotter``'s embedding graph as a TFLite file ``out`` plus ``out.json`` metadata
    (``extra`` added to it).  ``spotter`` is a :class:`KeywordSpotter` or a :class:`TFEmbedder`."""
    out = Path(out)
    if spotter.features.top_db is None:
        raise ConfigError("FeatureConfig.top_db=None needs a float64 spectrum, which the TFLite "
                          "export does not provide; export as savedmodel")
    _check_out(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    graph = EmbeddingGraph(spotter.network.encoder, spotter.features, spectrum="dft")
    # No trackable object: the converter then freezes the weights into constants (with one,
    # they stay resource variables, which the interpreter runs as uninitialised: NaN).
    with _without_absl_notice("trackable_obj"):  # the deprecation notice of exactly this choice
        converter = tf.lite.TFLiteConverter.from_concrete_functions([graph.serve.get_concrete_function()])
    blob = converter.convert()
    atomic_write_bytes(out, blob)
    atomic_write_text(metadata_path(out), json.dumps(_metadata(spotter, extra), indent=2) + "\n")
    return out


def export_model(spotter, out: str | os.PathLike, format: str = "savedmodel",
                 force: bool = False) -> Path:
    """Export in ``format`` (one of :data:`FORMATS`)."""
    if format not in FORMATS:
        raise ConfigError(f"format={format!r} must be one of {FORMATS}")
    fn = export_savedmodel if format == "savedmodel" else export_tflite
    return fn(spotter, out, force=force)


class SavedModelEmbedder:
    """An exported SavedModel loaded back with ``tf.saved_model.load``; ``self(audio) -> [n, d]``."""

    def __init__(self, path: str | os.PathLike):
        path = Path(path)
        if not (path / "saved_model.pb").is_file():
            raise CheckpointError(f"{path}: not a SavedModel folder (no saved_model.pb)")
        self.metadata = json.loads((path / METADATA).read_text())
        self._fn = tf.saved_model.load(str(path)).signatures["serving_default"]

    def __call__(self, audio: np.ndarray, batch_size: int = BATCH_SIZE) -> np.ndarray:
        return embed_in_batches(lambda b: self._fn(audio=tf.constant(b))["embedding"].numpy(),
                                audio, batch_size)


def load_exported(path: str | os.PathLike, num_threads: int | None = None):
    """A SavedModel folder or a ``.tflite`` file as an embedder ``(audio [n, num_samples]) -> [n, d]``."""
    path = Path(path)
    return SavedModelEmbedder(path) if path.is_dir() else TFLiteEmbedder(path, num_threads)
