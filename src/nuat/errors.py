"""Errors that the command line reports as one line on stderr with exit code 2."""


class UsageError(ValueError):
    """Bad input from the user: a config value, a path, a name. The message is one line."""


class DataError(UsageError):
    """A data file is missing, truncated or malformed. The message names the file."""


class CheckpointError(UsageError):
    """A checkpoint cannot be read safely (not safetensors, needs unpickling, corrupted)."""
