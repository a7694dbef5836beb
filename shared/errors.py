"""Error types that entry points turn into one-line messages.

Raise a `GenlabError` (or a subclass) for anything a user can fix: bad config, missing data, a file that is not
what it should be. The message must say what was wrong and how to fix it, in one line. Entry points wrap their
`main` with `shared.cli.run_main`, which prints `error: <message>` and exits non-zero with no traceback.
Programming errors (bugs) stay ordinary exceptions and keep their tracebacks.
"""


class GenlabError(Exception):
    """A user-fixable problem; the message is shown to the user as one line."""

    exit_code = 2


class ConfigError(GenlabError):
    """A config field that is unknown, of the wrong type, or out of range."""


class DataError(GenlabError):
    """A data path that is missing, empty or unreadable."""


class CheckpointError(GenlabError):
    """A checkpoint that is missing, corrupt, or not a genlab checkpoint."""
