"""The project's own errors: one base class, so a caller (the CLI, a plugin) catches them all.

Each error's message names the file or argument and the problem, so it can be shown to a user
as it is, without a traceback.
"""

from __future__ import annotations


class NucleiError(Exception):
    """Base class of every error that nucleilib raises on purpose."""


class DatasetError(NucleiError, ValueError):
    """A data file or folder is missing, unreadable or malformed; the message names it."""


class ModelNotFoundError(NucleiError, FileNotFoundError, ValueError):
    """A model name or folder, or one of a model's files, does not exist."""


class BackendUnavailableError(ModelNotFoundError):
    """An inference backend's model file (such as ``model-int8.tflite``) is missing."""
