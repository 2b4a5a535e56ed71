"""Errors that are the user's to fix: printed as one paragraph, never as a traceback."""


class UserError(Exception):
    """A mistake in the user's input: the message says what is wrong and what is allowed."""


class ConfigError(UserError):
    """A config key has a value that is not allowed, or two keys do not go together."""


class DataError(UserError):
    """A data file or data set cannot be used as given."""


class OutputError(UserError):
    """The run directory cannot be written: no permission, or the disk is full."""
