"""Errors that the command line reports as one line on stderr with exit code 2, and the warning it
reports as one plain line."""


class UsageError(ValueError):
    """Bad input from the user: a config value, a path, a name. The message is one line."""


class DataError(UsageError):
    """A data file is missing, truncated or malformed. The message names the file."""


class CheckpointError(UsageError):
    """A checkpoint cannot be read safely (not safetensors, needs unpickling, corrupted)."""


class RunWarning(UserWarning):
    """Something the user should know that does not stop the work (e.g. a broken training state
    skipped on resume). The command line prints it as ``nuat <command>: warning: ...``."""
