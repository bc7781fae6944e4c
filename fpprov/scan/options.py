"""The options of a token-FP scan and their checks: each ScanOptions checks itself once, when it is made.

The checks that need the model (--start inside the vocabulary, --check-length inside the context, a BOS
token for --bos) are fpprov.scan.run.plan_scan's; everything else is here (how the model loads included:
dtype, device, device map), so that the CLI only maps the error, and every check runs before any model loads.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import FpprovError

VERIFY_MODES = ("calibrated", "all", "near")
# fpprov.models.loading.DTYPES' names, here so that a typo fails before torch loads (tests/test_cli_startup.py)
DTYPE_NAMES = ("float32", "float64", "bfloat16", "float16")
# Sizes that split the work: (field, flag); a size under 1 would split nothing.
_SIZES = (("batch_size", "--batch-size"), ("commit_every", "--commit-every"), ("head_chunk", "head_chunk"),
          ("recheck_batch", "recheck_batch"), ("calibration_sample", "calibration_sample"))


@dataclass
class ScanOptions:
    bos: bool = False
    batch_size: int = 1024         # ids per body batch: the GEMMs of 1,024 rows ran 10-20% faster than 256 here
    tolerance: float = 1e-4        # relative: a margin under tolerance * max(1, |logit|) is re-checked
    check_length: int | None = None
    start: int = 0
    limit: int | None = None
    commit_every: int = 4096       # ids per transaction
    force: bool = False
    head_chunk: int = 8192
    # calibrated: float64 for every verdict within max(safety_factor x the error measured on a random sample,
    # the sample's proven bound); all: every FP and near tie in float64; near: near ties only
    verify: str = "calibrated"
    recheck_batch: int = 4096      # ids re-checked together (one float64 cast of each layer per group)
    safety_factor: float = 10.0    # calibrated: the factor on the measured error (Calibration.threshold)
    calibration_sample: int = 256  # calibrated: ids re-checked in float64 to measure the error
    # how `fpprov scan` loads the model (scan_vocabulary takes a loaded model; the scan records its weights' dtype)
    dtype: str = "float32"         # float32 | float64 | bfloat16 | float16
    device: str = "auto"           # auto | cpu | cuda[:N] | mps | xpu
    device_map: str | None = None  # one of accelerate's strategies: one model over every visible GPU

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Raise FpprovError, worded for the CLI, for the first option outside its range."""
        if self.limit is not None and self.limit <= 0:
            raise FpprovError("--limit must be a positive number of tokens")
        if self.start < 0:   # the vocabulary's end is plan_scan's check, once the model is loaded
            raise FpprovError(f"--start must be at least 0 (got {self.start})")
        if self.dtype not in DTYPE_NAMES:
            raise FpprovError(f"unknown dtype {self.dtype!r}: use one of {', '.join(DTYPE_NAMES)}")
        if self.verify not in VERIFY_MODES:
            raise FpprovError(f"unknown --verify {self.verify!r}: use calibrated, all or near")
        for name, flag in _SIZES:
            if getattr(self, name) < 1:
                raise FpprovError(f"{flag} must be at least 1 (got {getattr(self, name)})")
        if not self.safety_factor >= 1:
            raise FpprovError(f"safety_factor must be at least 1 (got {self.safety_factor})")
        if self.tolerance < 0:
            raise FpprovError(f"--tolerance must be at least 0 (got {self.tolerance})")
        if self.check_length is not None and self.check_length < 2:
            raise FpprovError(f"--check-length must be at least 2, got {self.check_length}")
        from ..runtime.distributed import Ranks

        check_loading(self.dtype, self.device, self.device_map, Ranks.from_env().world)


def check_loading(dtype: str, device: str, device_map: str | None, world: int = 1) -> None:
    """Raise FpprovError for a dtype, device or device map this machine cannot load a model with (every rank
    of ``world`` holding a whole model refuses a device map): the checks that need torch but no model."""
    from ..models.devices import check_device_map, resolve_device
    from ..models.loading import DTYPES

    if dtype not in DTYPES:
        raise FpprovError(f"unknown dtype {dtype!r}: use one of {', '.join(DTYPES)}")
    resolve_device(device)
    check_device_map(device_map, world)
