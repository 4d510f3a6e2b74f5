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


def user_message(error: HfSslError) -> str:
    """What the user reads of an `HfSslError`: its message, or, when a DataLoader worker raised it (an image file
    that cannot be read, found when its batch was fetched), the original message, not the traceback that torch's
    DataLoader wraps it in ("Caught HfSslError in DataLoader worker process 0. Original Traceback ...")."""
    text = str(error).strip()
    if not text.startswith(f"Caught {HfSslError.__name__} in DataLoader worker"):
        return text
    last = text.splitlines()[-1]
    return last.split(f"{HfSslError.__name__}: ", 1)[-1]
