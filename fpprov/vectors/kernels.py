"""Products of a few rows (the seeds of a vector-FP search) with large weight matrices, in the forms that run fast.

A vector-FP search multiplies 1-10 rows by the 262,144 x 640 head and embedding of gemma3-270m, and by the
decoder's weights, hundreds of times. MKL (torch's CPU BLAS) runs such products far below the machine's
rate when the few rows are the GEMM's M dimension and the weight is cold: a 1-row product with a 2048 x 640
weight read it at ~10 GB/s where a plain sum reads 54 GB/s. Measured here (2 cores, AMD EPYC, MKL 2024.2,
float32; bench/few_rows.py prints them in one run):

- oneDNN's linear with a weight packed once (``torch.ops.mkldnn._linear_pointwise``, the kernel torch's
  own CPU compiler uses for frozen linear layers) took 25-31 ms for the head and 27-30 ms for the mixture
  for 1-10 rows, against 36-63 and 35-58 ms for MKL in row blocks; 300-320 us against 540-1,030 us per cold
  2048 x 640 decoder weight. Its head product is also the same bit for bit whatever the batch size.
  It has no autograd kernel, so it runs only where no gradient is asked for; packing costs a copy of each
  weight (gemma3-270m: 0.67 GB for the head, 0.67 GB for E transposed, 0.4 GB for the decoder; peak memory
  of the demo's vector step 3.1 -> 5.5 GB), made only while a quarter of the RAM stays free after it.
- Without it on the CPU (gradients through T, a torch built without oneDNN): for 2-4 rows the head as
  (W @ a.T).T, where the few rows are N and W's rows M (25 against 81 ms for 3 rows in 64 blocks), the same
  for the decoder's linear layers (61 against 79 ms for gemma3-270m's decoder, 3 rows), and otherwise
  batched GEMMs over row blocks (the mixture in 256 blocks of 1,024 rows: 28-43 against 35-57 ms for
  1-3 rows in 64). On a GPU the blocked GEMMs run as they are.

Every form computes the same product up to float32 reassociation; none changes a result beyond rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils.weak import WeakIdKeyDictionary

from ..models.memory import free_memory, total_ram

# Batch sizes for which (W @ a.T).T beat a @ W.T through MKL (see the module docstring).
TRANSPOSED_ROWS = range(2, 5)
ONEDNN = (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
          and hasattr(torch.ops.mkldnn, "_reorder_linear_weight"))

# weight -> (its version when packed, packed weight), by identity (a tensor's == is elementwise); "t" entries
# pack weight.T, for y @ weight. A packed copy lives as long as its weight.
_PACKED = {"w": WeakIdKeyDictionary(), "t": WeakIdKeyDictionary()}


def row_blocks(n_rows: int, most: int = 64) -> int:
    """How many blocks the vocabulary-sized MKL products run in: the largest of most, most/2, ..., 8 that
    divides n_rows, for n_rows of at least 65,536; else 1.

    One GEMM against all 262,144 rows ran about 2x slower than a batched GEMM over 16-32 row blocks here
    (MKL, 2 threads: 37 vs 20 ms for 1 seed, 84 vs 41-47 ms for 10), for the head and the mixture alike;
    64 blocks (4,096 rows each) ran faster again for 10 seeds (head 58 vs 80 ms, mixture 54 vs 63 ms).
    """
    blocks = most
    while blocks >= 8:
        if n_rows >= 65536 and n_rows % blocks == 0:
            return blocks
        blocks //= 2
    return 1


def uses_onednn(a: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether a product of ``a`` with ``weight`` runs through oneDNN: float32 on the CPU, no gradient asked."""
    return (ONEDNN and a.device.type == "cpu" and weight.device.type == "cpu" and a.dtype == torch.float32
            and weight.dtype == torch.float32 and weight.dim() == 2 and a.shape[-1] > 0
            and not (torch.is_grad_enabled() and (a.requires_grad or weight.requires_grad)))


def uses_transposed_form(a: torch.Tensor) -> bool:
    """Whether an MKL product of the rows of ``a`` (..., D) with a weight runs as (W @ a.T).T."""
    rows = a.numel() // a.shape[-1] if a.shape[-1] else 0
    return a.device.type == "cpu" and a.dtype == torch.float32 and rows in TRANSPOSED_ROWS


def packed(weight: torch.Tensor, transposed: bool = False) -> torch.Tensor | None:
    """``weight`` (out, in), or its transpose, in oneDNN's blocked layout, packed once per weight version;
    None when less than a quarter of the RAM would stay free after the copy (the MKL forms then run instead:
    a whole large model's decoder packed beside it could exhaust the memory, one weight at a time)."""
    cache = _PACKED["t" if transposed else "w"]
    held = cache.get(weight)
    if held is None or held[0] != weight._version:
        if free_memory("cpu") - weight.numel() * weight.element_size() < total_ram() // 4:
            return None
        with torch.no_grad():
            source = weight.detach().T.contiguous() if transposed else weight.detach().contiguous()
            held = (weight._version, torch.ops.mkldnn._reorder_linear_weight(source, None))
        cache[weight] = held
    return held[1]


def _onednn_weight(a: torch.Tensor, weight: torch.Tensor, transposed: bool = False) -> torch.Tensor | None:
    """The packed weight for a product of ``a`` with ``weight`` through oneDNN, or None where it does not run."""
    return packed(weight, transposed) if uses_onednn(a, weight) else None


def onednn_linear(a: torch.Tensor, weight_packed: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """a (..., in) @ W.T + bias through oneDNN, for a weight from ``packed``: (..., out)."""
    flat = a.reshape(-1, a.shape[-1]).contiguous()                                                 # (R, in)
    out = torch.ops.mkldnn._linear_pointwise(flat, weight_packed, bias, "none", [], "")             # (R, out)
    return out.reshape(*a.shape[:-1], out.shape[-1])


def times_rows_t(a: torch.Tensor, rows: torch.Tensor, blocks: int) -> torch.Tensor:
    """a (S, D) @ rows.T for rows (V, D): (S, V)."""
    if (weight := _onednn_weight(a, rows)) is not None:
        return onednn_linear(a, weight)                                                            # (S, V)
    if uses_transposed_form(a):
        return (rows @ a.T).T                                                                       # (S, V)
    if blocks == 1:
        return a @ rows.T
    s = a.shape[0]
    parts = a.expand(blocks, s, a.shape[1]) @ rows.view(blocks, -1, rows.shape[1]).transpose(1, 2)  # (b, S, V/b)
    return parts.transpose(0, 1).reshape(s, -1)                                                     # (S, V)


def weights_times_rows(y: torch.Tensor, rows: torch.Tensor, blocks: int) -> torch.Tensor:
    """y (S, V) @ rows (V, D): (S, D)."""
    if (weight := _onednn_weight(y, rows, transposed=True)) is not None:
        return onednn_linear(y, weight)                                                            # (S, D)
    if blocks == 1:
        return y @ rows
    s = y.shape[0]
    return (y.view(s, blocks, -1).transpose(0, 1) @ rows.view(blocks, -1, rows.shape[1])).sum(0)    # (S, D)


class FewRowLinear(TorchFunctionMode):
    """Within this context, F.linear runs through oneDNN (``uses_onednn``), else as (W @ x.T).T + b for a few
    rows (``uses_transposed_form``), else as itself.

    A TorchFunctionMode rather than a change to the model: the decoder's modules stay as transformers built
    them, and only the calls made inside the context (the map's decoder pass) take the other form.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.linear:
            x, weight = args[0], args[1]
            bias = args[2] if len(args) > 2 else kwargs.get("bias")
            if bias is None or bias.dtype == torch.float32:
                if (blocked := _onednn_weight(x, weight)) is not None:
                    return onednn_linear(x, blocked, bias)
            if weight.dim() == 2 and uses_transposed_form(x):
                out = (weight @ x.reshape(-1, x.shape[-1]).T).T                    # (R, out)
                if bias is not None:
                    out = out + bias
                return out.reshape(*x.shape[:-1], weight.shape[0])               # (..., out)
        return func(*args, **kwargs)
