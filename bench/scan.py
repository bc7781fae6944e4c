"""Token-scan speed on one model and slice, measured in one run, printed as ratios.

(a) one forward per token, (b) the plain batched forward at batch 256 (full logits), (c) `fpprov scan`
(scan_vocabulary: length-1 shortcut, pruned head, float64 re-checks of every FP, DuckDB writes), and the
dense float32 roofline: FLOPs of a plain forward over the slice / this machine's GEMM rate measured now.

It also prints the exactness floor: the GEMM time no exact scan can avoid on this slice, at the float32 and
float64 GEMM rates measured in the same run --
  every id:  the length-1 body in float32 (Q, K, RoPE skipped);
  every FP:  its whole float32 head row (its probability needs every logit: measured on gemma3-270m, a
             bfloat16 row is off by up to 1.1 nats per logit and 0.28 in log-sum-exp, and the mass is spread
             over tens of thousands of ids), and the length-1 body again in float64 (item 5: every FP is
             re-checked in float64).

    python bench/scan.py [--model gemma3-270m] [--start 4096] [--n 2048] [--n-single 48]
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path

import torch

from fpprov.models import load_model
from fpprov.scan import ScanOptions, scan_vocabulary
from fpprov.store import open_store


def gemm_rate(d: int, n: int = 8192, batch: int = 256, repeat: int = 8, rounds: int = 5,
              dtype: torch.dtype = torch.float32) -> float:
    """Sustained FLOP/s of (batch, d) @ (d, n) in ``dtype``: the best of ``rounds`` rounds, so that a noisy
    neighbour makes the roofline and the floor stricter (shorter), never looser."""
    a, b = torch.randn(batch, d, dtype=dtype), torch.randn(d, n, dtype=dtype)
    a @ b
    best = 0.0
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(repeat):
            a @ b
        best = max(best, 2 * batch * d * n * repeat / (time.perf_counter() - t0))
    return best


def peak_rss_gib() -> float:
    """VmHWM of this process (ru_maxrss would carry a forking parent's peak over across exec)."""
    line = next(line for line in open("/proc/self/status") if line.startswith("VmHWM"))
    return int(line.split()[1]) / 2**20


def flops_per_token(model) -> dict[str, float]:
    """FLOPs per token of: the plain dense forward (LM head included), the length-1 body in the scan dtype
    (no Q/K projections) and in float64 (o_proj summed over each query group), and one head row."""
    emb = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    config = model.config
    group = config.num_attention_heads // (getattr(config, "num_key_value_heads", None) or config.num_attention_heads)
    dense = len1 = len1_f64 = 0
    for name, p in model.named_parameters():
        if p.dim() != 2 or p is emb or p is head:
            continue
        dense += p.numel()
        if name.endswith(("q_proj.weight", "k_proj.weight")):
            continue
        len1 += p.numel()
        len1_f64 += p.numel() // group if name.endswith("o_proj.weight") else p.numel()
    return {"dense": 2.0 * (dense + head.numel()), "len1": 2.0 * len1, "len1_f64": 2.0 * len1_f64,
            "head_row": 2.0 * head.numel()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="gemma3-270m")
    parser.add_argument("--start", type=int, default=4096)
    parser.add_argument("--n", type=int, default=2048)
    parser.add_argument("--n-single", type=int, default=48)
    args = parser.parse_args()

    loaded = load_model(args.model)
    model = loaded.model
    gc.collect()
    rss_loaded = peak_rss_gib()
    ids = torch.arange(args.start, args.start + args.n)
    d = loaded.hidden_size
    rate = gemm_rate(d)
    rate64 = gemm_rate(d, n=2048, batch=1024, dtype=torch.float64)
    rate32_body = gemm_rate(d, n=2048, batch=1024)
    flops = flops_per_token(model)
    with torch.no_grad():
        t0 = time.perf_counter()
        for t in ids[: args.n_single]:
            model(input_ids=t.view(1, 1)).logits[0, -1].argmax()
        single = args.n_single / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for b in ids.split(256):
            model(input_ids=b[:, None]).logits[:, -1].argmax(-1)
        batched = args.n / (time.perf_counter() - t0)
    rates, results = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for verify in ("all", "near", "calibrated"):
            with open_store(Path(tmp) / f"bench-{verify}.duckdb") as store:
                t0 = time.perf_counter()
                result = scan_vocabulary(loaded, store, ScanOptions(start=args.start, limit=args.n, verify=verify))
                rates[verify] = args.n / (time.perf_counter() - t0)
                results[verify] = result
                if verify == "calibrated":
                    cal = store.query("SELECT calibration_error, safety_factor FROM scans WHERE scan_id = ?",
                                      [result.scan_id])[0]
    full, result = results["all"], results["near"]
    fpprov_rate = rates["all"]
    peak = peak_rss_gib()
    fp32_size = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values()) * 4 / 2**30
    roofline_s = args.n * flops["dense"] / rate
    floor_body = args.n * flops["len1"] / rate32_body
    floor_head = full.fp_count * flops["head_row"] / rate
    floor_f64 = full.rechecked * flops["len1_f64"] / rate64
    floor_s = floor_body + floor_head + floor_f64
    floor_near = floor_body + floor_head + result.rechecked * flops["len1_f64"] / rate64
    scan_s = args.n / fpprov_rate
    print(f"model {loaded.name} ({loaded.quantization or 'float32'}), ids [{args.start}, {args.start + args.n}),"
          f" {full.fp_count} FPs ({full.fp_count / args.n:.0%}), {full.rechecked} float64 re-checks"
          f" (--verify near: {result.rechecked})")
    print(f"GEMM rates now: float32 {rate / 1e9:.0f} GFLOP/s (head shape), {rate32_body / 1e9:.0f} (body shape);"
          f" float64 {rate64 / 1e9:.0f}")
    print(f"dense forward {flops['dense'] / 1e9:.2f} GFLOP/token; roofline {roofline_s:.1f} s for the slice"
          f" ({args.n / roofline_s:.0f} tok/s)")
    print(f"exactness floor {floor_s:.1f} s = {floor_s / roofline_s:.2f}x roofline: float32 body {floor_body:.1f} s"
          f" + FP head rows {floor_head:.1f} s + float64 body of re-checks {floor_f64:.1f} s"
          f" (--verify near: {floor_near / roofline_s:.2f}x)")
    print(f"(a) one forward per token   {single:8.1f} tok/s")
    print(f"(b) plain batched, B=256    {batched:8.1f} tok/s")
    print(f"(c) fpprov scan             {fpprov_rate:8.1f} tok/s   (--verify all: every FP re-checked in float64)")
    print(f"(c') fpprov scan --verify near {rates['near']:6.1f} tok/s   (float64 for near ties only);"
          f" time / roofline = {(args.n / rates['near']) / roofline_s:.2f}x")
    saved = args.n / rates["all"] - args.n / rates["calibrated"]
    print(f"(c'') fpprov scan --verify calibrated {rates['calibrated']:6.1f} tok/s   (the default now:"
          f" {results['calibrated'].rechecked} re-checks, error {cal[0]:.3g} x factor {cal[1]:g});"
          f" saves {saved:.1f} s over --verify all on the slice; time / roofline ="
          f" {(args.n / rates['calibrated']) / roofline_s:.2f}x")
    print(f"ratios: (c) time / dense roofline = {scan_s / roofline_s:.2f}x (target <= 0.6x);"
          f" (c)/(a) = {fpprov_rate / single:.0f}x faster (target >= 60x); (c)/(b) = {fpprov_rate / batched:.1f}x;"
          f" (c) time / exactness floor = {scan_s / floor_s:.2f}x")
    print(f"peak RSS {peak:.2f} GiB = fp32 model {fp32_size:.2f} GiB + {peak - fp32_size:.2f} GiB"
          f" (target <= +1.5 GiB; after load {rss_loaded:.2f} GiB)")


if __name__ == "__main__":
    main()
