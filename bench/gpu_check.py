"""GPU readiness check for a lent GPU machine: about 5-10 minutes on one H100/H200 with the defaults.

  1. the memory estimate fpprov prints before loading, against the GPU's free memory;
  2. a scan of gemma3-270m (the installed GGUF package) on the GPU: tokens/s, the CUDA memory peak
     (torch.cuda.max_memory_allocated) and the float64 re-checks' share of the scan time;
  3. the same slice loaded with ``device_map="auto"`` (accelerate; over every GPU when there are several):
     the verdicts must equal the single-device load's;
  4. with more than one GPU: ``torchrun --standalone --nproc-per-node N -m fpprov scan`` against the one-rank
     CLI on the same slice, giving the N-rank scaling efficiency (t1 / (N tN)); a torchrun that fails (e.g. a
     build without rank support) is reported in one line and the check goes on.

Exit status 1 when a check failed (verdicts differ, a command failed), 0 otherwise.

    python bench/gpu_check.py [--model gemma3-270m] [--device cuda] [--start 0] [--n 65536] [--ranks auto]
    python bench/gpu_check.py --device cpu --n 256      # a dry run of the script itself, on any machine
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import torch

from fpprov.scan import judge
from fpprov.models import load_model
from fpprov.scan.run import ScanOptions, plan_scan, run_scan
from fpprov.db.store import open_store


class Float64Clock:
    """Seconds spent in the float64 re-checks of a scan: TokenJudge's re-check step timed around each call
    (synchronized, so queued GPU work is counted where it runs)."""

    def __init__(self, device: torch.device):
        self.seconds = 0.0
        self.device = device
        self.what = "float64 re-checks"
        name = "_recheck_float64" if hasattr(judge.TokenJudge, "_recheck_float64") else "hidden"
        if name == "hidden":
            self.what = "float64 body only"    # the judge was reorganised: time its float64 forwards
        self._name, self._original = name, getattr(judge.TokenJudge, name)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def __enter__(self) -> "Float64Clock":
        original, clock = self._original, self

        def timed(judge_self, *args, **kwargs):
            if clock._name == "hidden" and (len(args) < 2 or args[1] != torch.float64) \
                    and kwargs.get("dtype") != torch.float64:
                return original(judge_self, *args, **kwargs)
            clock._sync()
            t0 = time.perf_counter()
            try:
                return original(judge_self, *args, **kwargs)
            finally:
                clock._sync()
                clock.seconds += time.perf_counter() - t0

        setattr(judge.TokenJudge, self._name, timed)
        return self

    def __exit__(self, *exc) -> None:
        setattr(judge.TokenJudge, self._name, self._original)


def fp_ids(store, scan_id: int) -> list[int]:
    return [r["token_id"] for r in store.query_dicts("SELECT token_id FROM token_fps WHERE scan_id = ? "
                                                     "ORDER BY token_id", [scan_id])]


def scan_once(loaded, db: Path, opts: ScanOptions, device: torch.device) -> tuple[float, float, list[int], object, str]:
    """(seconds, float64 seconds, FP ids, result, what the float64 clock timed) of one scan into a fresh database."""
    with open_store(db) as store, Float64Clock(device) as clock:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        # the scan alone: scan_vocabulary also runs the one-off under-trained analysis of the model (once per
        # model and database), which a fresh database per measurement would otherwise count every time
        result = run_scan(plan_scan(loaded, opts), store)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - t0
        return seconds, clock.seconds, fp_ids(store, result.scan_id), result, clock.what


def peak_gib(device: torch.device) -> str:
    if device.type == "cuda":
        return f"CUDA peak {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB allocated " \
               f"({torch.cuda.max_memory_reserved(device) / 2**30:.2f} GiB reserved)"
    line = next(line for line in open("/proc/self/status") if line.startswith("VmHWM"))
    return f"peak RSS {int(line.split()[1]) / 2**20:.2f} GiB"


def environment() -> int:
    """Prints torch and the GPUs; returns the GPU count."""
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {count} GPU(s)")
    for i in range(count):
        free, total = torch.cuda.mem_get_info(i)
        print(f"  cuda:{i} {torch.cuda.get_device_name(i)}: {free / 1e9:.1f} of {total / 1e9:.1f} GB free")
    return count


def cli_scan(command: list[str], timeout: float) -> tuple[float, int, str]:
    """(seconds, exit status, last output line) of one `fpprov scan` command."""
    t0 = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "4")})
    except subprocess.TimeoutExpired:
        return time.perf_counter() - t0, 124, f"timed out after {timeout:.0f} s"
    lines = (done.stdout + done.stderr).strip().splitlines()
    return time.perf_counter() - t0, done.returncode, lines[-1] if lines else ""


def db_fp_count(db: Path) -> int | None:
    try:
        with duckdb.connect(str(db), read_only=True) as con:
            return int(con.execute("SELECT count(*) FROM token_fps").fetchone()[0])
    except duckdb.Error:
        return None


def ranks_check(args, n_gpus: int, tmp: Path) -> bool:
    """One-rank CLI against torchrun over ``n`` ranks on the same slice; False when a run failed."""
    n = n_gpus if args.ranks == "auto" else int(args.ranks)
    if n < 2:
        print(f"ranks: skipped ({n_gpus} GPU: the N-rank check needs at least 2)")
        return True
    common = ["scan", args.model, "--device", "cuda", "--start", str(args.start), "--limit", str(args.n_ranks)]
    one_db, many_db = tmp / "one.duckdb", tmp / "many.duckdb"
    t1, rc1, last1 = cli_scan([sys.executable, "-m", "fpprov", *common, "--db", str(one_db)], args.timeout)
    if rc1 != 0:
        print(f"ranks: the one-rank `fpprov scan` failed (exit {rc1}): {last1}")
        return False
    torchrun = shutil.which("torchrun")
    launcher = [torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"]
    tn, rcn, lastn = cli_scan([*launcher, "--standalone", "--nproc-per-node", str(n), "-m", "fpprov", *common,
                               "--db", str(many_db)], args.timeout)
    if rcn != 0:
        print(f"ranks: torchrun over {n} ranks failed (exit {rcn}; is rank support in this build of the scan?): "
              f"{lastn}")
        return False
    same = db_fp_count(one_db) == db_fp_count(many_db)
    print(f"ranks: {args.n_ranks} ids, 1 rank {t1:.1f} s, {n} ranks {tn:.1f} s (wall, model loads included): "
          f"speed-up {t1 / tn:.2f}x, scaling efficiency {t1 / (n * tn):.0%}; FP counts "
          f"{'equal' if same else 'DIFFER'} ({db_fp_count(one_db)} vs {db_fp_count(many_db)})")
    return same


def ladder_check(args, float32_fps: list[int]) -> None:
    """The bfloat16 precision ladder on the device: how it accumulates, which rung decides how many verdicts of
    the --n-map slice, its speed, and how many verdicts differ from the float32 load's (a float32 checkpoint
    rounded to bfloat16 is another model: a difference is reported, not failed)."""
    from rungs import accumulation, judge_slice

    loaded = load_model(args.model, dtype="bfloat16", device=args.device)
    worst, rounding = accumulation(torch.bfloat16, loaded.device)
    t0 = time.perf_counter()
    low, seconds, _ = judge_slice(loaded, args.start, args.n_map, ScanOptions())
    counts = [int((low["decided_by"] == code).sum()) for code in (judge.SCREEN, judge.FLOAT32, judge.FLOAT64)]
    fps = set(low["ids"][low["is_fp"]].tolist())
    print(f"bfloat16 ladder: matmul error {worst:.3g} vs rounding alone {rounding:.3g}; {args.n_map} ids in "
          f"{seconds:.1f} s = {args.n_map / seconds:,.0f} tokens/s; decided in bfloat16 {counts[0]}, float32 rung "
          f"{counts[1]}, float64 {counts[2]}; {len(fps ^ set(float32_fps))} verdicts differ from the float32 load's")
    del loaded


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gemma3-270m")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--n", type=int, default=65536, help="ids of the single-device scan")
    parser.add_argument("--n-map", type=int, default=8192, help="ids compared between the plain and mapped loads")
    parser.add_argument("--n-ranks", type=int, default=65536, help="ids of the one-rank vs N-rank comparison")
    parser.add_argument("--ranks", default="auto", help="ranks for torchrun: auto (every GPU) or a number")
    parser.add_argument("--timeout", type=float, default=240, help="seconds allowed to each CLI scan")
    args = parser.parse_args()

    n_gpus = environment()
    ok = True
    t0 = time.perf_counter()
    loaded = load_model(args.model, device=args.device, on_estimate=lambda e: print(e.line()))
    device = loaded.device
    print(f"loaded {loaded.name} ({loaded.quantization or 'float32'}) on {device} in {time.perf_counter() - t0:.1f} s")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        opts = ScanOptions(start=args.start, limit=args.n)
        seconds, f64, fps, result, what = scan_once(loaded, tmp / "scan.duckdb", opts, device)
        print(f"scan: {args.n} ids in {seconds:.1f} s = {args.n / seconds:,.0f} tokens/s; {result.fp_count} FPs, "
              f"{result.rechecked} re-checked in float64; {what} {f64:.1f} s = {f64 / seconds:.0%} of the time; "
              f"{peak_gib(device)}")

        small = ScanOptions(start=args.start, limit=args.n_map)
        _, _, plain_fps, _, _ = scan_once(loaded, tmp / "plain.duckdb", small, device)
        del loaded
        mapped = load_model(args.model, device=args.device, device_map="auto" if device.type == "cuda" else None)
        placed = sorted(set(mapped.device_map.values()))
        _, _, mapped_fps, _, _ = scan_once(mapped, tmp / "mapped.duckdb", small, mapped.device)
        same = mapped_fps == plain_fps
        ok &= same
        print(f"device map: {len(mapped.device_map)} module(s) on {', '.join(placed)}; verdicts on {args.n_map} ids "
              f"{'equal' if same else 'DIFFER from'} the single-device load's ({len(plain_fps)} FPs)")
        del mapped
        if device.type == "cuda":
            torch.cuda.empty_cache()
        ladder_check(args, plain_fps)
        if device.type == "cuda":
            torch.cuda.empty_cache()
            ok &= ranks_check(args, n_gpus, tmp)
    print("gpu check: " + ("ok" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
