"""Errors that fer_helpers raises on bad input.

Every one carries a message meant for a person: it names the file or value
that was wrong and says what was expected. The command line prints that
message on one line and exits non-zero instead of showing a traceback.
"""


class FerError(Exception):
    """Base class: a problem with the user's input, not a bug in fer_helpers."""


class DataError(FerError):
    """The data could not be found or read: missing folder, corrupt image, bad CSV."""


class ClassNameError(FerError, ValueError):
    """A class name that is not one of FER2013's seven emotions."""


class CheckpointError(FerError):
    """A checkpoint that cannot be read or does not fit the model."""
