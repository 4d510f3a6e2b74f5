"""The one exception type for user errors.

Anything the user can fix (an unknown method, a missing column, a corrupt image, an invalid
hyperparameter, ...) raises :class:`HfSslError` with a message that names the problem and, where
possible, the fix. The CLI prints it as a single line on stderr and exits non-zero; library users
catch it like any other exception.
"""


class HfSslError(Exception):
    """A problem with the user's input, reported as one clear line (never a traceback)."""
