"""Token fixed points: for every id t, does the single-token input [t] make greedy decoding output t?

``options`` checks a scan's settings, ``hidden`` runs the body for length-1 inputs, ``head`` the pruned LM
head, ``judge`` turns both into verdicts (the precision ladder, the float64 re-check and its calibration),
``run`` plans, resumes and commits a scan chunk by chunk, and ``undertrained`` adds magikarp's indicator to a
scan's model. The names below load their module on first use, so that ``ScanOptions`` (checked by the CLI
before any model loads) does not bring torch with it.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_WHERE = {"ScanOptions": ".options", "ScanPlan": ".run", "ScanResult": ".run", "plan_scan": ".run",
          "run_scan": ".run", "scan_vocabulary": ".run"}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_WHERE[name], __name__), name)
