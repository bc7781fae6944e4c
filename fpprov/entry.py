"""The `fpprov` executable: guards against Ctrl-C around the CLI (interrupts.py), then runs it."""

from __future__ import annotations

import sys

from .runtime import interrupts


def main() -> None:
    interrupts.defer_during_imports()
    code: int | str | None = 0
    try:
        # Imported here, not at the top, on purpose: the CLI's imports must run with Ctrl-C deferred.
        from .cli import run

        interrupts.raise_if_deferred()
        run()
    except KeyboardInterrupt:
        code = interrupts.report()
    except SystemExit as exc:  # every command ends here; typer turns a Ctrl-C in its own code into 130
        code = exc.code
        if code == interrupts.EXIT_CODE:
            interrupts.report()
    finally:
        interrupts.ignore_from_now_on()
    sys.exit(code)
