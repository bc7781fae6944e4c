"""Token fixed points: for every id t, does the single-token input [t] make greedy decoding output t?

``options`` checks a scan's settings, ``hidden`` runs the body for length-1 inputs, ``head`` the pruned LM
head, ``judge`` turns both into verdicts (with the float64 re-check and its calibration), ``run`` plans,
resumes and commits a scan chunk by chunk, and ``undertrained`` adds magikarp's indicator to a scan's model.
"""

from __future__ import annotations

from .options import ScanOptions
from .run import ScanPlan, ScanResult, plan_scan, run_scan, scan_vocabulary

__all__ = ["ScanOptions", "ScanPlan", "ScanResult", "plan_scan", "run_scan", "scan_vocabulary"]
