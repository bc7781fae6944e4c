"""Token-scan speed on one model and slice, measured in one run, printed as ratios.

(a) one forward per token, (b) the plain batched forward at batch 256 (full logits), (c) `fpprov scan`
(scan_vocabulary: length-1 shortcut, pruned head, float64 re-checks of every FP, DuckDB writes), and the
dense float32 roofline: FLOPs of a plain forward over the slice / this machine's GEMM rate measured now.

    python bench/scan.py [--model gemma3-270m] [--start 4096] [--n 2048] [--n-single 48]
"""

from __future__ import annotations

import argparse
import gc
import resource
import tempfile
import time
from pathlib import Path

import torch

from fpprov.models import load_model
from fpprov.scan import ScanOptions, scan_vocabulary
from fpprov.store import open_store


def gemm_rate(d: int, n: int = 8192, batch: int = 256, repeat: int = 20) -> float:
    """Sustained float32 FLOP/s of (batch, d) @ (d, n): the shape of the LM head and wide projections."""
    a, b = torch.randn(batch, d), torch.randn(d, n)
    a @ b
    t0 = time.perf_counter()
    for _ in range(repeat):
        a @ b
    return 2 * batch * d * n * repeat / (time.perf_counter() - t0)


def dense_flops_per_token(model) -> float:
    """2 x (every weight touched by a plain length-1 forward, LM head included); embeddings are lookups."""
    emb = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    body = sum(p.numel() for name, p in model.named_parameters() if p.dim() == 2 and p is not emb and p is not head)
    return 2.0 * (body + head.numel())


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
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    ids = torch.arange(args.start, args.start + args.n)
    rate = gemm_rate(loaded.info["hidden_size"])
    flops = dense_flops_per_token(model)
    with torch.no_grad():
        t0 = time.perf_counter()
        for t in ids[: args.n_single]:
            model(input_ids=t.view(1, 1)).logits[0, -1].argmax()
        single = args.n_single / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for b in ids.split(256):
            model(input_ids=b[:, None]).logits[:, -1].argmax(-1)
        batched = args.n / (time.perf_counter() - t0)
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        for verify in ("all", "near"):
            with open_store(Path(tmp) / f"bench-{verify}.duckdb") as store:
                t0 = time.perf_counter()
                result = scan_vocabulary(loaded, store, ScanOptions(start=args.start, limit=args.n, verify=verify))
                rates[verify] = args.n / (time.perf_counter() - t0)
                if verify == "all":
                    full = result
    fpprov_rate = rates["all"]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    fp32_size = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values()) * 4 / 2**30
    roofline_s = args.n * flops / rate
    print(f"model {loaded.name} ({loaded.info['quantization'] or 'float32'}), ids [{args.start}, {args.start + args.n}),"
          f" {full.fp_count} FPs, {full.rechecked} float64 re-checks (--verify near: {result.rechecked})")
    print(f"GEMM rate now: {rate / 1e9:.0f} GFLOP/s; dense forward {flops / 1e9:.2f} GFLOP/token;"
          f" roofline {roofline_s:.1f} s for the slice ({args.n / roofline_s:.0f} tok/s)")
    print(f"(a) one forward per token   {single:8.1f} tok/s")
    print(f"(b) plain batched, B=256    {batched:8.1f} tok/s")
    print(f"(c) fpprov scan             {fpprov_rate:8.1f} tok/s   (every FP re-checked in float64, the default)")
    print(f"(c') fpprov scan --verify near {rates['near']:6.1f} tok/s   (float64 for near ties only);"
          f" time / roofline = {(args.n / rates['near']) / roofline_s:.2f}x")
    print(f"ratios: (c) time / dense roofline = {(args.n / fpprov_rate) / roofline_s:.2f}x (target <= 0.6x);"
          f" (c)/(a) = {fpprov_rate / single:.0f}x faster (target >= 60x); (c)/(b) = {fpprov_rate / batched:.1f}x")
    print(f"peak RSS {peak:.2f} GiB = fp32 model {fp32_size:.2f} GiB + {peak - fp32_size:.2f} GiB"
          f" (target <= +1.5 GiB; after load {rss_loaded:.2f} GiB)")


if __name__ == "__main__":
    main()
