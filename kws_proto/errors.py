"""The package's error hierarchy.

Every error the package raises on bad input derives from :class:`KwsError`, and every message
names the offending file or value and the cause, in the manner of librosa's ``ParameterError``.
"""

from __future__ import annotations


class KwsError(Exception):
    """Base class of every error kws_proto raises on purpose."""


class AudioError(KwsError):
    """An audio file is missing, unreadable, corrupt, empty or holds non-finite samples."""


class ConfigError(KwsError, ValueError):
    """A configuration value is invalid; the message names the field and the value."""


class DatasetError(KwsError):
    """A dataset folder, manifest, split or class is missing, malformed or too small."""


class CheckpointError(KwsError):
    """A run directory or checkpoint is missing or does not match its config."""


class BankError(KwsError):
    """A keyword bank is missing, corrupt, tampered with, or made by another encoder."""
