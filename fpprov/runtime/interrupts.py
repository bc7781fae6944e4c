"""Ctrl-C at any moment: one line and exit 130 (or 0 once everything is committed), never a traceback.

Python raises KeyboardInterrupt wherever the main thread happens to be. Three places turn that into a
traceback instead of a clean exit, and each gets its own remedy here:
- imports: an interrupt inside the import machinery can land in an import lock's weakref callback, where
  Python can only print it ("Exception ignored in: <function _ModuleLock...cb>"). The CLI's own imports
  run with the signal deferred, and a deferred Ctrl-C ends the run right after them;
- callbacks Python cannot raise from (the same weakref callbacks inside lazy imports during model loading,
  finalizers): the unraisable hook hands the interrupt back to the main thread, where it is caught;
- shutdown: once the command has returned, its exit code is final and nothing is left to interrupt, so
  the signal is ignored while the interpreter tears down.
A KeyboardInterrupt in the command itself rolls back the open transaction (store.py), so committed work is
all that remains and a rerun resumes.
"""

from __future__ import annotations

import _thread
import signal
import sys
from typing import Any

MESSAGE = "interrupted: committed work is kept; rerun the same command to resume"
EXIT_CODE = 130

_deferred = False
_reported = False


def _defer(signum: int, frame: Any) -> None:
    global _deferred
    _deferred = True


def _unraisable(unraisable: Any) -> None:
    if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
        _thread.interrupt_main()  # raised again at the main thread's next instruction, where it can be caught
        return
    sys.__unraisablehook__(unraisable)


def defer_during_imports() -> None:
    """From here on a Ctrl-C only sets a flag (see ``raise_if_deferred``)."""
    signal.signal(signal.SIGINT, _defer)
    sys.unraisablehook = _unraisable


def raise_if_deferred() -> None:
    """Restore Python's own Ctrl-C, raising KeyboardInterrupt now if one came in while deferred."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if _deferred:
        raise KeyboardInterrupt


def ignore_from_now_on() -> None:
    """For shutdown: the exit code is decided, so a late Ctrl-C changes nothing and prints nothing."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def report() -> int:
    """Say once that the run was interrupted; the exit code to end with."""
    global _reported
    if not _reported:
        _reported = True
        print(MESSAGE, file=sys.stderr, flush=True)
    return EXIT_CODE
