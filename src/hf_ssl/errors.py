"""The one exception type for user errors.

Anything the user can fix (an unknown method, a missing column, a corrupt image, an invalid
hyperparameter, ...) raises :class:`HfSslError` with a message that names the problem and, where
possible, the fix. The CLI prints it as a single line on stderr and exits non-zero; library users
catch it like any other exception.
"""


class HfSslError(Exception):
    """A problem with the user's input, reported as one clear line (never a traceback)."""


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (its type name when empty): third-party errors often span
    many lines, and a user error must be one."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
