"""User-facing errors.

Every error a user can cause (bad input file, missing weights, bad config) is raised as a subclass of
:class:`MagicAnimateError` with a message that names the file and the problem. Scripts catch this base class
and print the message without a traceback; anything else is a bug and keeps its traceback.
"""


class MagicAnimateError(Exception):
    """Base class of errors caused by the user's input, files or configuration."""


class InputError(MagicAnimateError, ValueError):
    """An input file (image, video, frame folder, dataset) is missing, unreadable or unsuitable."""


class ConfigError(MagicAnimateError, ValueError):
    """A configuration file or override is invalid (unknown key, wrong type, bad value)."""


class WeightsError(MagicAnimateError, RuntimeError):
    """A weight file or folder is missing, incomplete, or holds keys other than expected."""


class NonFiniteError(MagicAnimateError, FloatingPointError):
    """A computation produced NaN or infinite values (e.g. the latents during sampling)."""


class Cancelled(MagicAnimateError):
    """A run was cancelled (Ctrl-C, SIGTERM, or a cancel button) before it finished; nothing was written."""
