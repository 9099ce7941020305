"""Errors the user can fix: a bad config, data file, path, dependency or endpoint setting. The CLI prints them in one
line (`error: ...`, exit code 2) instead of a traceback, so their messages name the file, line, field or setting and
say what to do. Each is also the built-in exception it refines, for code that catches those."""


class UserError(Exception):
    """Bad input or set-up, with a message that says what to fix."""


class InvalidValue(UserError, ValueError):
    """A setting or input value that cannot be used."""


class MissingPath(UserError, FileNotFoundError):
    """An input file or folder that is not there."""


class MissingDependency(UserError, ImportError):
    """An optional package a chosen setting needs."""


class NotAvailable(UserError, RuntimeError):
    """Something the run needs that this machine or endpoint does not provide."""
