"""Products of a few rows (the seeds of a vector-FP search) with large weight matrices, in the forms that run fast.

A vector-FP search multiplies a few rows (1-10 seeds) by a model's vocabulary-sized head and embedding and by
its decoder's weights, hundreds of times. torch's CPU BLAS runs such products far below the memory rate when
the few rows are the GEMM's M dimension and the weight is cold, so two families of forms replace the plain
``a @ W.T`` (their speeds: docs/development.md, "Vector search speed", and ``bench/few_rows.py``):

- **oneDNN's linear with each weight packed once** (``torch.ops.mkldnn._linear_pointwise`` and
  ``_reorder_linear_weight``, the ops torch's CPU compiler uses for frozen linear layers). These are private
  ops of torch's inductor with no stability promise, so they are used defensively: probed once against the
  public product before first use, and every call runs inside a try. An op that is missing, takes other
  arguments, or returns another shape or value makes this module give them up for the rest of the process
  (one ``RuntimeWarning``), and the public forms below run instead; the results are the same product up to
  float32 rounding. They have no autograd kernel, so they run only where no gradient is asked for, and a
  packed copy of a weight is made only while a quarter of the RAM stays free after it.
  They are always fed at least two rows: for a single row oneDNN takes another kernel whose sums differ in
  the last bits, while from two rows on each row's result does not depend on the other rows. So T of a seed
  is the same bit for bit whatever batch it is evaluated in (tested), and a residual measured in the batch
  that found an FP is the residual of that FP evaluated alone.
- **the public forms** (``torch.matmul``), where oneDNN does not run (gradients through T, a torch without
  oneDNN or whose private ops changed, no memory for the packed copy): for 2-4 rows on the CPU
  ``(W @ a.T).T`` (the few rows as the GEMM's N dimension), otherwise batched GEMMs over row blocks of the
  vocabulary-sized matrices (``row_blocks``). On a GPU the blocked GEMMs run as they are. Their sums depend
  on the batch size, so there T of a seed can differ in the last bits between batches.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils.weak import WeakIdKeyDictionary

from ..models.memory import free_memory, total_ram

# Batch sizes for which (W @ a.T).T beat a @ W.T through the CPU BLAS (docs/development.md).
TRANSPOSED_ROWS = range(2, 5)
# Where torch's private oneDNN ops are looked up (a test swaps it for a namespace that lacks or changed them).
_OPS = torch.ops.mkldnn
# Whether the private oneDNN ops are used: they exist here, and (once probed, see ``onednn_works``) they work.
# Set to False for good by the first failure.
ONEDNN = (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
          and hasattr(torch.ops.mkldnn, "_reorder_linear_weight"))
_PROBED: list[bool] = []          # [result] once ``onednn_works`` has run

# weight -> (its version when packed, packed weight), by identity (a tensor's == is elementwise); "t" entries
# pack weight.T, for y @ weight. A packed copy lives as long as its weight.
_PACKED = {"w": WeakIdKeyDictionary(), "t": WeakIdKeyDictionary()}


def row_blocks(n_rows: int, most: int = 64) -> int:
    """How many blocks the vocabulary-sized public products run in: the largest of most, most/2, ..., 8 that
    divides n_rows, for n_rows of at least 65,536; else 1 (a batched GEMM over row blocks runs faster than
    one GEMM against all rows here, docs/development.md)."""
    blocks = most
    while blocks >= 8:
        if n_rows >= 65536 and n_rows % blocks == 0:
            return blocks
        blocks //= 2
    return 1


def give_up_onednn(why: str) -> None:
    """Stop using the private oneDNN ops in this process (drop their packed copies) and say so once."""
    global ONEDNN
    if ONEDNN:
        ONEDNN = False
        _PACKED["w"], _PACKED["t"] = WeakIdKeyDictionary(), WeakIdKeyDictionary()
        warnings.warn(f"torch's private oneDNN linear ops failed ({why}); fpprov uses the public matrix "
                      "products from now on (slower, same results up to float32 rounding)", RuntimeWarning,
                      stacklevel=3)


def _onednn_product(flat: torch.Tensor, weight: torch.Tensor, transposed: bool,
                    bias: torch.Tensor | None) -> torch.Tensor | None:
    """flat (R, in) @ W.T + bias (W.T @ ... for ``transposed``: flat @ weight) through oneDNN, at least two rows
    fed; None when the packed copy would not fit. Raises whatever the private ops raise."""
    blocked = packed(weight, transposed)
    if blocked is None:
        return None
    rows = flat.shape[0]
    fed = flat.expand(2, flat.shape[1]).contiguous() if rows == 1 else flat                       # (>=2, in)
    out = _OPS._linear_pointwise(fed, blocked, bias, "none", [], "")                             # (>=2, out)
    n_out = weight.shape[1] if transposed else weight.shape[0]
    if not (isinstance(out, torch.Tensor) and tuple(out.shape) == (fed.shape[0], n_out)
            and out.dtype == torch.float32):
        raise RuntimeError(f"_linear_pointwise returned {getattr(out, 'shape', type(out).__name__)}, "
                           f"expected ({fed.shape[0]}, {n_out}) float32")
    return out[:rows]                                                                             # (R, out)


def onednn_works() -> bool:
    """Whether the private ops exist and compute a small product (with a bias, and a single row) as the public
    forms do; probed once per process, a failure gives them up (``give_up_onednn``)."""
    if not ONEDNN:
        return False
    if not _PROBED:
        gen = torch.Generator().manual_seed(0)
        a, w, b = torch.randn(3, 8, generator=gen), torch.randn(5, 8, generator=gen), torch.randn(5, generator=gen)
        try:
            with torch.no_grad():
                got = [_onednn_product(a, w, False, b), _onednn_product(a[:1], w, False, None),
                       _onednn_product(a, w.T.contiguous(), True, None)]
                want = [a @ w.T + b, a[:1] @ w.T, a @ w.T]
            if any(g is None for g in got):
                return True   # no memory for even this copy: decide on a later call
            if not all(torch.allclose(g, e, rtol=1e-4, atol=1e-5) for g, e in zip(got, want)):
                raise RuntimeError("its product differs from the public one")
        except Exception as error:  # a private op: any failure means its contract changed
            _PROBED.append(False)
            give_up_onednn(f"{type(error).__name__}: {error}")
            return False
        _PROBED.append(True)
    return ONEDNN and _PROBED[0]


def uses_onednn(a: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether a product of ``a`` with ``weight`` runs through oneDNN: float32 on the CPU, no gradient asked,
    the private ops working."""
    return (ONEDNN and a.device.type == "cpu" and weight.device.type == "cpu" and a.dtype == torch.float32
            and weight.dtype == torch.float32 and weight.dim() == 2 and a.shape[-1] > 0
            and not (torch.is_grad_enabled() and (a.requires_grad or weight.requires_grad)) and onednn_works())


def uses_transposed_form(a: torch.Tensor) -> bool:
    """Whether a public product of the rows of ``a`` (..., D) with a weight runs as (W @ a.T).T."""
    rows = a.numel() // a.shape[-1] if a.shape[-1] else 0
    return a.device.type == "cpu" and a.dtype == torch.float32 and rows in TRANSPOSED_ROWS


def packed(weight: torch.Tensor, transposed: bool = False) -> torch.Tensor | None:
    """``weight`` (out, in), or its transpose, in oneDNN's blocked layout, packed once per weight version;
    None when less than a quarter of the RAM would stay free after the copy (the public forms then run instead:
    a whole large model's decoder packed beside it could exhaust the memory, one weight at a time)."""
    cache = _PACKED["t" if transposed else "w"]
    held = cache.get(weight)
    if held is None or held[0] != weight._version:
        if free_memory("cpu") - weight.numel() * weight.element_size() < total_ram() // 4:
            return None
        with torch.no_grad():
            source = weight.detach().T.contiguous() if transposed else weight.detach().contiguous()
            held = (weight._version, _OPS._reorder_linear_weight(source, None))
        cache[weight] = held
    return held[1]


def onednn_linear(a: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                  transposed: bool = False) -> torch.Tensor | None:
    """a (..., in) @ weight.T + bias (a @ weight for ``transposed``) through oneDNN: (..., out); None where it
    does not run (``uses_onednn``, no memory for the packed copy) or has just failed (then given up for good)."""
    if not uses_onednn(a, weight):
        return None
    try:
        with torch.no_grad():
            out = _onednn_product(a.reshape(-1, a.shape[-1]).contiguous(), weight, transposed, bias)
    except Exception as error:  # a private op: any failure means its contract changed
        give_up_onednn(f"{type(error).__name__}: {error}")
        return None
    return None if out is None else out.reshape(*a.shape[:-1], out.shape[-1])


def times_rows_t(a: torch.Tensor, rows: torch.Tensor, blocks: int) -> torch.Tensor:
    """a (S, D) @ rows.T for rows (V, D): (S, V)."""
    if (out := onednn_linear(a, rows)) is not None:
        return out                                                                                 # (S, V)
    if uses_transposed_form(a):
        return (rows @ a.T).T                                                                       # (S, V)
    if blocks == 1:
        return a @ rows.T
    s = a.shape[0]
    parts = a.expand(blocks, s, a.shape[1]) @ rows.view(blocks, -1, rows.shape[1]).transpose(1, 2)  # (b, S, V/b)
    return parts.transpose(0, 1).reshape(s, -1)                                                     # (S, V)


def weights_times_rows(y: torch.Tensor, rows: torch.Tensor, blocks: int) -> torch.Tensor:
    """y (S, V) @ rows (V, D): (S, D)."""
    if (out := onednn_linear(y, rows, transposed=True)) is not None:
        return out                                                                                 # (S, D)
    if blocks == 1:
        return y @ rows
    s = y.shape[0]
    return (y.view(s, blocks, -1).transpose(0, 1) @ rows.view(blocks, -1, rows.shape[1])).sum(0)    # (S, D)


class FewRowLinear(TorchFunctionMode):
    """Within this context, F.linear runs through oneDNN (``onednn_linear``), else as (W @ x.T).T + b for a few
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
                if (out := onednn_linear(x, weight, bias)) is not None:
                    return out
            if weight.dim() == 2 and uses_transposed_form(x):
                out = (weight @ x.reshape(-1, x.shape[-1]).T).T                    # (R, out)
                if bias is not None:
                    out = out + bias
                return out.reshape(*x.shape[:-1], weight.shape[0])               # (..., out)
        return func(*args, **kwargs)
