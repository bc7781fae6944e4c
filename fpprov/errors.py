"""User-facing errors: the CLI prints them as one line and exits with code 2, no traceback."""


class FpprovError(Exception):
    """Bad input or an environment problem the user can fix; the message is the whole story."""


class DatabaseLockedError(FpprovError):
    """The database file is locked by another process (a writer holds it); a reader may use a snapshot."""


class LowPrecisionWarning(UserWarning):
    """A dtype (bfloat16, float16) that loses the precision fixed points need; float32 is the reference."""
