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

For each --verify mode it prints tokens/s, the float64 re-checks' share of the scan time and, for the
calibrated default, the time it saves over --verify all. The plain batched forward and the default scan
are timed alternately over --rounds rounds and the best of each is compared, so that a noisy neighbour in
one round does not decide the ratio. On a GPU (--device cuda) the GEMM rates, the plain forwards and the
scans run there and the memory peak is CUDA's.

    python bench/scan.py [--model gemma3-270m] [--device cpu] [--start 4096] [--n 2048] [--n-single 48]
                         [--rounds 2] [--float64-reference]
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

import torch

from fpprov.models.devices import resolve_device
from fpprov.models import load_model
from fpprov.scan import hidden
from fpprov.scan.run import ScanOptions
from fpprov.db.store import open_store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_check import peak_gib, scan_once  # noqa: E402  (one float64 clock and one memory peak for both scripts)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gemm_rate(d: int, n: int = 8192, batch: int = 256, repeat: int = 8, rounds: int = 5,
              dtype: torch.dtype = torch.float32, device: torch.device = torch.device("cpu")) -> float:
    """Sustained FLOP/s of (batch, d) @ (d, n) in ``dtype``: the best of ``rounds`` rounds, so that a noisy
    neighbour makes the roofline and the floor stricter (shorter), never looser."""
    a = torch.randn(batch, d, dtype=dtype, device=device)      # (B, d)
    b = torch.randn(d, n, dtype=dtype, device=device)          # (d, n)
    a @ b
    best = 0.0
    for _ in range(rounds):
        sync(device)
        t0 = time.perf_counter()
        for _ in range(repeat):
            a @ b
        sync(device)
        best = max(best, 2 * batch * d * n * repeat / (time.perf_counter() - t0))
    return best


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


def body_rates(model, ids: torch.Tensor, device: torch.device, batch: int = 256) -> tuple[float, float]:
    """Tokens/s of the final hidden states of single-token inputs: the length-1 shortcut and the model's own
    decoder forward (what the scan runs without the shortcut), best of two rounds each."""
    layout = hidden.layer_layout(model)
    if layout is None:
        return float("nan"), float("nan")
    rates = []
    for run in (lambda b: hidden.hidden_len1(model, b, layout), lambda b: hidden.hidden_forward(model, b[:, None])):
        best = float("inf")
        for _ in range(2):
            with torch.no_grad():
                sync(device)
                t0 = time.perf_counter()
                for b in ids.split(batch):
                    run(b)
                sync(device)
                best = min(best, time.perf_counter() - t0)
        rates.append(len(ids) / best)
    return rates[0], rates[1]


def plain_batched(model, ids: torch.Tensor, device: torch.device, batch: int = 256) -> float:
    """Tokens/s of the seed's method: a plain batched forward of the single-token inputs, full logits,
    argmax."""
    with torch.no_grad():
        sync(device)
        t0 = time.perf_counter()
        for b in ids.split(batch):
            model(input_ids=b[:, None]).logits[:, -1].argmax(-1)
        sync(device)
        return len(ids) / (time.perf_counter() - t0)


def float64_reference(model, ids: torch.Tensor, batch: int = 128) -> list[int]:
    """The FPs among ``ids`` by the model's own forward in float64, whole rows (a tie is not an FP); casts
    ``model`` to float64 in place, so it runs last."""
    model.double()
    fps = []
    with torch.no_grad():
        for b in ids.split(batch):
            logits = model(input_ids=b[:, None]).logits[:, -1]                      # (B, V)
            rows = torch.arange(len(b), device=b.device)
            own = logits[rows, b].clone()                                          # (B,)
            logits[rows, b] = float("-inf")
            fps += b[own > logits.max(-1).values].tolist()
    return sorted(fps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gemma3-270m")
    parser.add_argument("--device", default="cpu", help="cpu | cuda[:N] | auto")
    parser.add_argument("--start", type=int, default=4096)
    parser.add_argument("--n", type=int, default=2048)
    parser.add_argument("--n-single", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=2,
                        help="rounds of (plain batched, default scan), timed alternately; the best of each counts")
    parser.add_argument("--float64-reference", action="store_true",
                        help="also compare the verdicts with the model's own forward in float64 (whole rows)")
    parser.add_argument("--body-only", action="store_true",
                        help="only the length-1 shortcut against the model's own forward (body, no head)")
    args = parser.parse_args()

    device = resolve_device(args.device)
    loaded = load_model(args.model, device=str(device))
    model = loaded.model
    gc.collect()
    memory_loaded = peak_gib(device)
    ids = torch.arange(args.start, args.start + args.n, device=device)     # (N,)
    d = loaded.hidden_size
    rate = gemm_rate(d, device=device)
    rate64 = gemm_rate(d, n=2048, batch=1024, dtype=torch.float64, device=device)
    rate32_body = gemm_rate(d, n=2048, batch=1024, device=device)
    flops = flops_per_token(model)
    shortcut, own_forward = body_rates(model, ids, device)
    print(f"body of the slice: length-1 shortcut {shortcut:.1f} tok/s, the model's own forward {own_forward:.1f} "
          f"tok/s: shortcut / forward = {shortcut / own_forward:.2f}x (bit-identical: tests/test_scan_exact.py)")
    if args.body_only:
        return
    with torch.no_grad():
        sync(device)
        t0 = time.perf_counter()
        for t in ids[: args.n_single]:
            model(input_ids=t.view(1, 1)).logits[0, -1].argmax()
        sync(device)
        single = args.n_single / (time.perf_counter() - t0)
    seconds, f64_seconds, results = {}, {}, {}
    batched = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for run, verify in enumerate(("all", "near") + ("calibrated",) * args.rounds):
            if verify == "calibrated":
                batched = max(batched, plain_batched(model, ids, device))
            opts = ScanOptions(start=args.start, limit=args.n, verify=verify)
            took, f64_took, fps, result, _ = scan_once(loaded, Path(tmp) / f"bench-{run}.duckdb", opts, device)
            if verify not in seconds or took < seconds[verify]:
                seconds[verify], f64_seconds[verify], results[verify] = took, f64_took, result
            if verify != "all":
                assert fps == fp_all, f"--verify {verify} gave other verdicts than --verify all"
            else:
                fp_all = fps
        with open_store(Path(tmp) / "bench-2.duckdb") as store:      # the first calibrated scan's
            cal = store.query_dicts("SELECT calibration_measured, calibration_bound, safety_factor, "
                                    "calibration_threshold FROM scans")[0]
    full, near, calibrated = results["all"], results["near"], results["calibrated"]
    fp32_size = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values()) * 4 / 2**30
    roofline_s = args.n * flops["dense"] / rate
    floor_body = args.n * flops["len1"] / rate32_body
    floor_head = full.fp_count * flops["head_row"] / rate
    floor_f64 = full.rechecked * flops["len1_f64"] / rate64
    floor_s = floor_body + floor_head + floor_f64
    floor_near = floor_body + floor_head + near.rechecked * flops["len1_f64"] / rate64
    print(f"model {loaded.name} ({loaded.quantization or 'float32'}) on {device}, ids [{args.start}, "
          f"{args.start + args.n}), {full.fp_count} FPs ({full.fp_count / args.n:.0%}); verdicts identical in "
          f"the three --verify modes")
    print(f"GEMM rates now: float32 {rate / 1e9:.0f} GFLOP/s (head shape), {rate32_body / 1e9:.0f} (body shape);"
          f" float64 {rate64 / 1e9:.0f}")
    print(f"dense forward {flops['dense'] / 1e9:.2f} GFLOP/token; roofline {roofline_s:.1f} s for the slice"
          f" ({args.n / roofline_s:.0f} tok/s)")
    print(f"exactness floor of --verify all {floor_s:.1f} s = {floor_s / roofline_s:.2f}x roofline: float32 body "
          f"{floor_body:.1f} s + FP head rows {floor_head:.1f} s + float64 body of re-checks {floor_f64:.1f} s"
          f" (--verify near: {floor_near / roofline_s:.2f}x)")
    print(f"(a) one forward per token   {single:8.1f} tok/s")
    print(f"(b) plain batched, B=256    {batched:8.1f} tok/s  (best of {args.rounds}, alternating with (c) calibrated)")
    for verify, what in (("all", "every FP re-checked in float64"), ("near", "near ties only"),
                         ("calibrated", "the default: verdicts within the calibrated threshold")):
        r = results[verify]
        print(f"(c) fpprov scan --verify {verify:10s} {args.n / seconds[verify]:8.1f} tok/s  {seconds[verify]:6.1f} s,"
              f" {r.rechecked:5d} float64 re-checks taking {f64_seconds[verify]:5.1f} s"
              f" ({f64_seconds[verify] / seconds[verify]:.0%} of the scan); time / roofline"
              f" {seconds[verify] / roofline_s:.2f}x  ({what})")
    print(f"calibration: measured float32 error {cal['calibration_measured']:.3g}, proven bound of the sample "
          f"{cal['calibration_bound']:.3g}, threshold max({cal['safety_factor']:g} x measured, bound) = "
          f"{cal['calibration_threshold']:.3g}")
    saved = seconds["all"] - seconds["calibrated"]
    print(f"calibrated vs all: {seconds['all'] / seconds['calibrated']:.2f}x faster, {saved:.1f} s saved on the slice"
          f" ({calibrated.rechecked} re-checks instead of {full.rechecked})")
    print(f"ratios: (c all) / (a) = {args.n / seconds['all'] / single:.0f}x; (c calibrated) / (b) ="
          f" {args.n / seconds['calibrated'] / batched:.2f}x; (c all) time / exactness floor ="
          f" {seconds['all'] / floor_s:.2f}x")
    print(f"memory: {peak_gib(device)} (after load: {memory_loaded}; float32 weights {fp32_size:.2f} GiB)")
    if args.float64_reference:
        t0 = time.perf_counter()
        reference = float64_reference(model, ids)
        differ = sorted(set(reference) ^ set(fp_all))
        assert not differ, f"the scan's FPs differ from the float64 forward's on ids {differ[:10]}"
        print(f"float64 reference (the model's own forward in float64, whole rows, {time.perf_counter() - t0:.0f} s): "
              f"{len(reference)} FPs, the same verdicts as every --verify mode")


if __name__ == "__main__":
    main()
