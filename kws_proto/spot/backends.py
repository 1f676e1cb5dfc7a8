"""The spotter's embedding backend: one small interface, two implementations.

An *embedder* has ``backend`` (``"tf"`` or ``"lite"``), ``fingerprint`` (the weights
fingerprint a bank records), ``embedding_dim`` and ``__call__(audio [n, num_samples] float32)
-> [n, d] float32`` (raw audio in, the front end inside):

- ``"tf"``: :class:`kws_proto.spot.export.TFEmbedder`, the run's network in a ``tf.function``
  (imports TensorFlow, ~3-4 s before the first clip);
- ``"lite"``: :class:`kws_proto.spot.lite.TFLiteEmbedder`, the run's exported ``.tflite`` in
  the LiteRT interpreter (``ai-edge-litert``, the ``lite`` extra), with no TensorFlow at all.

Which one: ``backend=`` or ``$KWS_PROTO_BACKEND`` (``auto``, ``tf``, ``lite``); ``auto`` (the
default) is ``lite`` when LiteRT is installed, else ``tf``.

**The export cache.**  The ``.tflite`` is built once per encoder and kept beside it in the run
directory: ``RUN/embedder-<fingerprint[:16]>.tflite`` plus ``.tflite.json``, its metadata
(front end, weights fingerprint, embedding size, and ``sources``: the SHA-256 of the run's
``config.yaml``, ``best.weights.h5`` and ``head.npz``).  An export is used only while its
``sources`` match the run's files, which is checked without TensorFlow; building one (first use,
or after the weights changed) takes TensorFlow once.  The shipped ``default`` encoder builds
its export the same way, into its package folder (not kept in git, being a 3 MB cache).  When the run directory cannot be written the spotter stays on
TensorFlow.  Whenever TensorFlow builds the model, the fingerprint it computes must equal the
ones recorded (``record.json``'s ``weights_fingerprint`` and a current export's), or
:class:`~kws_proto.errors.CheckpointError` names both: banks made either way are
interchangeable because the fingerprint is the same.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from kws_proto.errors import CheckpointError, ConfigError
from kws_proto.spot.lite import TFLiteEmbedder, litert_available, metadata_path
from kws_proto.util.provenance import file_sha256

BACKENDS = ("auto", "tf", "lite")
BACKEND_ENV = "KWS_PROTO_BACKEND"
EXPORT_PREFIX = "embedder-"
SOURCES = ("config.yaml", "best.weights.h5", "head.npz")
RECORD = "record.json"


def resolve_backend(backend: str | None = None) -> str:
    """``"tf"`` or ``"lite"`` for ``backend`` (None: ``$KWS_PROTO_BACKEND``, else ``auto``)."""
    given = backend or os.environ.get(BACKEND_ENV) or "auto"
    if given not in BACKENDS:
        where = "backend" if backend else f"${BACKEND_ENV}"
        raise ConfigError(f"{where}={given!r} must be one of {', '.join(BACKENDS)}")
    if given == "auto":
        return "lite" if litert_available() else "tf"
    return given


def source_digests(run_dir: str | os.PathLike) -> dict | None:
    """SHA-256 of the run files an export is made from (None when the weights are missing)."""
    run_dir = Path(run_dir)
    if not (run_dir / "best.weights.h5").is_file():
        return None
    return {name: file_sha256(run_dir / name) for name in SOURCES if (run_dir / name).is_file()}


def _exports(run_dir: Path):
    """``(tflite path, metadata)`` of every export cached in ``run_dir``."""
    for meta in sorted(run_dir.glob(f"{EXPORT_PREFIX}*.tflite.json")):
        try:
            yield meta.with_name(meta.name[:-len(".json")]), json.loads(meta.read_text("utf-8"))
        except (OSError, ValueError):
            continue


def _current_export(run_dir: Path, sources: dict | None = None) -> tuple[Path, dict] | None:
    """The cached export made from the run's files as they are (``sources``: their digests,
    when already computed)."""
    sources = sources or source_digests(run_dir)
    if sources is None:
        return None
    return next(((p, m) for p, m in _exports(run_dir) if m.get("sources") == sources
                 and p.is_file()), None)


def find_export(run_dir: str | os.PathLike) -> Path | None:
    """The cached export of ``run_dir`` made from its current files, or None."""
    current = _current_export(Path(run_dir))
    return current[0] if current else None


def recorded_fingerprints(run_dir: str | os.PathLike) -> list[tuple[str, str]]:
    """``(where, fingerprint)`` recorded for ``run_dir`` without TensorFlow: ``record.json``'s
    ``weights_fingerprint`` (when its ``weights_sha256`` is the weights file's) and the current
    export's metadata."""
    run_dir = Path(run_dir)
    out = []
    try:
        record = json.loads((run_dir / RECORD).read_text("utf-8"))
    except (OSError, ValueError):
        record = {}
    sources = source_digests(run_dir)  # the run's files hashed once (None without weights)
    if (sources and isinstance(record, dict) and record.get("weights_fingerprint")
            and record.get("weights_sha256") == sources["best.weights.h5"]):  # of these weights
        out.append((str(run_dir / RECORD), record["weights_fingerprint"]))
    current = _current_export(run_dir, sources)
    if current is not None:
        out.append((str(metadata_path(current[0])), current[1].get("fingerprint")))
    return out


def check_fingerprint(embedder) -> None:
    """Raise :class:`CheckpointError` when ``embedder``'s computed fingerprint differs from one
    recorded for its run (:func:`recorded_fingerprints`)."""
    for where, fingerprint in recorded_fingerprints(embedder.model_dir):
        if fingerprint != embedder.fingerprint:
            raise CheckpointError(
                f"{embedder.model_dir}: TensorFlow computes weights fingerprint "
                f"{embedder.fingerprint[:16]}..., but {where} records {fingerprint[:16]}...; "
                f"the files were changed apart (delete {EXPORT_PREFIX}*.tflite* to rebuild the "
                "export, or republish the model)")


def write_export(embedder, name: str | None = None) -> Path:
    """Export ``embedder`` (a :class:`~kws_proto.spot.export.TFEmbedder`) as the cached
    ``.tflite`` of its run directory, removing older ones; ``name`` is recorded as the model in
    its metadata instead of the run's path (the shipped model: ``"default"``)."""
    from kws_proto.spot.export import export_tflite  # lazy: TensorFlow

    out_dir = embedder.model_dir
    out = out_dir / f"{EXPORT_PREFIX}{embedder.fingerprint[:16]}.tflite"
    extra = {"sources": source_digests(out_dir), **({"model": name} if name else {})}
    export_tflite(embedder, out, force=True, extra=extra)
    for old, _ in _exports(out_dir):
        if old != out:
            old.unlink(missing_ok=True)
            metadata_path(old).unlink(missing_ok=True)
    return out


def tf_embedder(run_dir: str | os.PathLike):
    """The TensorFlow embedder of ``run_dir``, its fingerprint checked against the records."""
    from kws_proto.spot.export import TFEmbedder  # lazy: TensorFlow

    embedder = TFEmbedder(run_dir)
    check_fingerprint(embedder)
    return embedder


def open_embedder(run_dir: str | os.PathLike, backend: str | None = None,
                  num_threads: int | None = None):
    """The embedder of the run directory ``run_dir`` on ``backend`` (:func:`resolve_backend`).

    ``lite`` uses the cached export, building it first when there is none (that once with
    TensorFlow); an unwritable run directory leaves it on TensorFlow.  ``num_threads`` is the
    interpreter's (None: the CPUs this process may use).
    """
    run_dir = Path(run_dir).resolve()
    if resolve_backend(backend) == "tf":
        return tf_embedder(run_dir)
    path = find_export(run_dir)
    if path is None:
        embedder = tf_embedder(run_dir)
        try:
            path = write_export(embedder)
        except OSError:
            return embedder
    if num_threads is None:
        num_threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return TFLiteEmbedder(path, num_threads=num_threads)
