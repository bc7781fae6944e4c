"""User-facing errors: the CLI prints them as one line and exits with code 2, no traceback."""


class FpprovError(Exception):
    """Bad input or an environment problem the user can fix; the message is the whole story."""
