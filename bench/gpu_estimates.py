"""Expected `fpprov scan` times of the seed's models on one H100 or H200, as estimates: FLOPs over peak rate.

Nothing is measured here. Per scanned id the length-1 shortcut runs v_proj, o_proj and the MLP of every layer
(Q, K, RoPE and the softmax are skipped) and at most one dense head row: 2 x (body parameters without Q/K) +
2 x V x D FLOPs, an upper bound since the pruned head drops most rows after a small slice. The float64 re-check
adds the body again in float64 for every FP (``--fp-share`` of the ids). A batch also reads every weight once,
so each part takes the larger of its compute time and its weight-read time (the roofline). Peak rates are
NVIDIA's dense figures (no sparsity); H100 and H200 share them, the H200 reads memory faster.
Architectures are the models' published configs (hidden size, layers, MLP width, heads, vocabulary rows).

    python bench/gpu_estimates.py [--fp-share 0.1] [--batch 1024]      # prints the markdown table of docs/gpu.md
"""

from __future__ import annotations

import argparse
import tomllib
from dataclasses import dataclass
from pathlib import Path

ALIASES = Path(__file__).resolve().parent.parent / "fpprov" / "data" / "models.toml"


@dataclass(frozen=True)
class Arch:
    hidden: int
    layers: int
    mlp: int          # intermediate size of the gated MLP (three D x I matrices)
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int        # embedding (= head) rows: the ids a scan covers

    def body_params(self) -> int:
        """Parameters the length-1 shortcut multiplies by, per id: v_proj, o_proj, the MLP, every layer."""
        d = self.hidden
        return self.layers * (d * self.kv_heads * self.head_dim + self.heads * self.head_dim * d + 3 * d * self.mlp)

    def all_params(self, tied: bool) -> int:
        d = self.hidden
        qk = self.layers * (d * self.heads * self.head_dim + d * self.kv_heads * self.head_dim)
        return self.body_params() + qk + self.vocab * d * (1 if tied else 2)


# size -> (architecture, tied head), the base and instruct models of a size share both.
ARCHS: dict[tuple[str, str], tuple[Arch, bool]] = {
    ("olmo2", "1b"): (Arch(2048, 16, 8192, 16, 16, 128, 100352), False),
    ("olmo2", "7b"): (Arch(4096, 32, 11008, 32, 32, 128, 100352), False),
    ("olmo2", "13b"): (Arch(5120, 40, 13824, 40, 40, 128, 100352), False),
    ("qwen3", "0.6b"): (Arch(1024, 28, 3072, 16, 8, 128, 151936), True),
    ("qwen3", "1.7b"): (Arch(2048, 28, 6144, 16, 8, 128, 151936), True),
    ("qwen3", "4b"): (Arch(2560, 36, 9728, 32, 8, 128, 151936), True),
    ("qwen3", "8b"): (Arch(4096, 36, 12288, 32, 8, 128, 151936), False),
    ("qwen3", "14b"): (Arch(5120, 40, 17408, 40, 8, 128, 151936), False),
    ("gemma3", "270m"): (Arch(640, 18, 2048, 4, 1, 256, 262144), True),
    ("gemma3", "1b"): (Arch(1152, 26, 6912, 4, 1, 256, 262144), True),
    ("smollm2", "135m"): (Arch(576, 30, 1536, 9, 3, 64, 49152), True),
}


@dataclass(frozen=True)
class Gpu:
    name: str
    bf16: float       # FLOP/s, tensor cores, dense
    fp32: float       # FLOP/s without TF32 (torch's default for float32 matmuls)
    fp64: float       # FLOP/s, FP64 tensor cores (DGEMM)
    bandwidth: float  # bytes/s of HBM


GPUS = (Gpu("H100 SXM", 989e12, 67e12, 67e12, 3.35e12), Gpu("H200 SXM", 989e12, 67e12, 67e12, 4.8e12))


def part_seconds(flops: float, weight_bytes: float, batches: float, rate: float, bandwidth: float) -> float:
    """The roofline time of a part: its FLOPs at the peak rate, or its weights read once per batch."""
    return max(flops / rate, batches * weight_bytes / bandwidth)


def scan_seconds(arch: Arch, gpu: Gpu, dtype: str, fp_share: float, batch: int) -> float:
    size, rate = (4, gpu.fp32) if dtype == "float32" else (2, gpu.bf16)
    ids = arch.vocab
    batches = ids / batch
    body = part_seconds(2.0 * arch.body_params() * ids, size * arch.body_params(), batches, rate, gpu.bandwidth)
    head = part_seconds(2.0 * arch.vocab * arch.hidden * ids, size * arch.vocab * arch.hidden, batches, rate,
                        gpu.bandwidth)
    fps = fp_share * ids
    recheck = part_seconds(2.0 * arch.body_params() * fps, 8 * arch.body_params(), fps / 4096, gpu.fp64,
                           gpu.bandwidth)   # re-checks run 4096 ids per group (ScanOptions.recheck_batch)
    return body + head + recheck


def _time(seconds: float) -> str:
    if seconds < 10:
        return f"~{seconds:.1f} s"
    return f"~{seconds:.0f} s" if seconds < 120 else f"~{seconds / 60:.0f} min"


def table(fp_share: float, batch: int) -> str:
    aliases = tomllib.loads(ALIASES.read_text())["models"]
    head = ["model", "params", "ids", "GFLOP/id", "float32 GB"] + \
        [f"{g.name} {d}" for g in GPUS for d in ("float32", "bfloat16")]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, entry in aliases.items():
        arch, tied = ARCHS[(entry["family"], entry["size"])]
        flops = 2.0 * (arch.body_params() + arch.vocab * arch.hidden)
        cells = [name, f"{arch.all_params(tied) / 1e9:.2f} B", f"{arch.vocab:,}", f"{flops / 1e9:.2f}",
                 f"{4 * arch.all_params(tied) / 1e9:.1f}"]
        cells += [_time(scan_seconds(arch, g, d, fp_share, batch)) for g in GPUS for d in ("float32", "bfloat16")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fp-share", type=float, default=0.1, help="share of ids that are FPs (re-checked)")
    parser.add_argument("--batch", type=int, default=1024, help="ids per forward batch (the scan's --batch-size)")
    args = parser.parse_args()
    print(table(args.fp_share, args.batch))


if __name__ == "__main__":
    main()
