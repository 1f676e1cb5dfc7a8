"""TensorFlow's start-up chatter kept off the terminal, nothing else.

TensorFlow 2.21 logs through absl before absl's logging is initialised, so its import prints
oneDNN, CUDA-driver and CPU-feature lines to file descriptor 2 whatever ``TF_CPP_MIN_LOG_LEVEL``
says (tensorflow/tensorflow#100442).  :func:`quiet_tensorflow` sets the variables that do work
(``TF_CPP_MIN_LOG_LEVEL=3`` hides the later C++ lines such as ``failed call to cuInit``; a value
the user set is kept) and wraps the first ``import tensorflow`` so that its descriptor-2 output
goes through a filter: the lines matching :data:`NOISE` are dropped, every other line (a Python
warning, a real error) is written to stderr as it was.  Python exceptions are untouched.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import os
import re
import sys
import tempfile

NOISE = re.compile(
    r"All log messages before absl::InitializeLog|oneDNN custom operations are on"
    r"|Could not find cuda drivers|cpu_feature_guard|To enable the following instructions"
    r"|rebuild TensorFlow with the appropriate compiler flags|Unable to register cu\w+ factory"
    r"|failed call to cuInit|computation placer already registered"
)


@contextlib.contextmanager
def filtered_stderr(noise: re.Pattern = NOISE):
    """Route file descriptor 2 through a temporary file; on exit write back its lines that do
    not match ``noise``."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = [line for line in tmp.read().decode("utf-8", "replace").splitlines(keepends=True)
                    if not noise.search(line)]
            sys.stderr.write("".join(kept))
            sys.stderr.flush()


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        with filtered_stderr():
            self._loader.exec_module(module)


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` once, as the path finder would, with its loader wrapped."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _QuietFinder)]
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet_tensorflow() -> None:
    """Set TensorFlow's log variables and filter its first import (a no-op once it is loaded)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules or any(isinstance(f, _QuietFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietFinder())
