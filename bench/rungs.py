"""The precision ladder of a low-precision scan, measured: which rung decides how many verdicts, and what each costs.

Loads the model in ``--dtype`` (bfloat16 by default) and judges ids [start, start + n) the way a scan does
(the screen's calibration on the scan's own sample first), then prints the share of verdicts each rung decided
(the screen in that dtype, the float32 rung, float64 re-checks), the wall time, and, with ``--compare``, how
many verdicts differ from a float32 load of the same checkpoint (they may: a float32 checkpoint rounded to
bfloat16 is another model; a checkpoint stored in bfloat16 gives the same verdicts both ways). It also prints
how this device's low-precision matmul accumulates: its largest relative error against float64 next to the
rounding of the exact result to the format alone (equal when products are accumulated in float32).

    python bench/rungs.py [--model gemma3-270m] [--dtype bfloat16] [--device cpu] [--start 4096] [--n 8192] [--compare]
"""

from __future__ import annotations

import argparse
import time

import torch

from fpprov.models import load_model
from fpprov.scan import ScanOptions
from fpprov.scan.judge import FLOAT32, FLOAT64, SCREEN, TokenJudge, calibration_sample


def accumulation(dtype: torch.dtype, device: torch.device, d: int = 4096) -> tuple[float, float]:
    """(largest relative error of a (64, d) @ (d, 256) product in ``dtype`` against float64, the same for the
    exact result merely rounded to ``dtype``): equal when the products are accumulated in float32 or wider."""
    gen = torch.Generator().manual_seed(0)
    a = (torch.rand(64, d, generator=gen) + 0.5).to(dtype).to(device)        # (64, d), all positive: no cancellation
    b = (torch.rand(d, 256, generator=gen) + 0.5).to(dtype).to(device)       # (d, 256)
    exact = a.double() @ b.double()                                          # (64, 256)
    got = ((a @ b).double() - exact).abs() / exact
    rounded = (exact.to(dtype).double() - exact).abs() / exact
    return float(got.max()), float(rounded.max())


def judge_slice(loaded, start: int, n: int, opts: ScanOptions) -> tuple[object, float, dict]:
    """The verdicts of ids [start, start + n), the seconds they took (calibration included) and the
    calibration of each rung (keyed by the dtype it screens in; None: the scan dtype)."""
    judge = TokenJudge(loaded, opts)
    t0 = time.perf_counter()
    sample = calibration_sample(start, start + n, opts.calibration_sample)
    if judge.low_precision and opts.verify == "calibrated":
        judge.calibrate(sample, torch.float32)
    judge.calibrate(sample)
    parts = [judge.judge(ids) for ids in torch.arange(start, start + n).split(opts.commit_every)]
    seconds = time.perf_counter() - t0
    merged = {name: torch.cat([getattr(p, name) for p in parts]) for name in ("ids", "is_fp", "decided_by")}
    return merged, seconds, judge.calibrations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gemma3-270m")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--start", type=int, default=4096)
    parser.add_argument("--n", type=int, default=8192)
    parser.add_argument("--compare", action="store_true", help="also judge the slice from a float32 load")
    args = parser.parse_args()

    loaded = load_model(args.model, dtype=args.dtype, device=args.device)
    worst, rounding = accumulation(loaded.dtype, loaded.device)
    print(f"{args.dtype} matmul on {loaded.device}: largest relative error {worst:.3g}, rounding alone {rounding:.3g} "
          f"({'float32 accumulation' if worst <= 1.01 * rounding else 'NOT float32 accumulation'})")
    opts = ScanOptions()
    low, seconds, calibrations = judge_slice(loaded, args.start, args.n, opts)
    n = len(low["ids"])
    shares = {name: int((low["decided_by"] == code).sum()) for name, code in
              ((args.dtype, SCREEN), ("float32", FLOAT32), ("float64", FLOAT64))}
    print(f"{loaded.name} in {args.dtype}, ids [{args.start}, {args.start + args.n}): {int(low['is_fp'].sum())} FPs, "
          f"{n / seconds:.1f} tok/s ({seconds:.1f} s, calibration included)")
    print("decided by: " + ", ".join(f"{name} {count} ({count / n:.1%})" for name, count in shares.items()))
    for dtype, cal in calibrations.items():
        print(f"calibration of the {args.dtype if dtype is None else str(dtype).removeprefix('torch.')} screen: "
              f"measured error {cal.measured:.3g}, the sample's bound {cal.bound:.3g}, threshold {cal.threshold:.3g}")
    if args.compare:
        del loaded
        reference = load_model(args.model, dtype="float32", device=args.device)
        f32, seconds32, _ = judge_slice(reference, args.start, args.n, opts)
        differ = int((f32["is_fp"] != low["is_fp"]).sum())
        print(f"float32 load: {int(f32['is_fp'].sum())} FPs, {n / seconds32:.1f} tok/s; {differ} of {n} verdicts "
              f"differ from the {args.dtype} load's (the two loads are different models unless the checkpoint is "
              f"stored in {args.dtype}); {args.dtype} / float32 speed {seconds32 / seconds:.2f}x")


if __name__ == "__main__":
    main()
