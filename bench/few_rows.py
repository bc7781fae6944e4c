"""Bench: the products of a few rows with the vocabulary matrices, in each form, measured in one run.

    python bench/few_rows.py                    # gemma3-270m's shapes (262,144 x 640), 1-10 rows
    python bench/few_rows.py --model gemma3-270m   # also T(x) of the real model, and its cross-batch drift

Prints, per batch size S, the milliseconds of each form of the head product a @ W.T, of the mixture y @ E,
and (with --model) of one evaluation of T, with fpprov's choice (fpprov.vectors.kernels: torch's private
oneDNN ops) against its public fallback forms and the plain blocked forms it replaced, then how far T of one x
moves between batch compositions in each form. The ratios are what counts: this machine is noisy, so compare
within one run.
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_models import load_bench_model  # noqa: E402
import fpprov.vectors.kernels as few_rows  # noqa: E402
from fpprov.vectors.kernels import FewRowLinear, row_blocks, times_rows_t, weights_times_rows  # noqa: E402
from fpprov.vectors import EmbeddingMap


def best_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * min(times)


@contextmanager
def without_onednn():
    """The MKL forms fpprov falls back to (gradients through T, a torch without oneDNN)."""
    saved, few_rows.ONEDNN = few_rows.ONEDNN, False
    try:
        yield
    finally:
        few_rows.ONEDNN = saved


def mkl(fn: Callable[[], object]) -> Callable[[], object]:
    def run() -> object:
        with without_onednn():
            return fn()
    return run


def blocked_head(a: torch.Tensor, rows: torch.Tensor, blocks: int) -> torch.Tensor:
    """The head as fpprov ran it before few_rows: ``blocks`` batched GEMMs of a @ rows_block.T."""
    s = a.shape[0]
    parts = a.expand(blocks, s, a.shape[1]) @ rows.view(blocks, -1, rows.shape[1]).transpose(1, 2)
    return parts.transpose(0, 1).reshape(s, -1)


def products(n_rows: int, dim: int, sizes: list[int], repeats: int) -> None:
    gen = torch.Generator().manual_seed(0)
    rows = torch.randn(n_rows, dim, generator=gen) * 0.03                      # (V, D)
    print(f"products with a {n_rows:,} x {dim} float32 matrix, {torch.get_num_threads()} threads "
          f"(ms, best of {repeats}; MKL = the forms fpprov uses where oneDNN does not run)")
    print("S  head: 64 blocks  transposed  MKL  fpprov | mixture: 64 blocks  256 blocks  fpprov | head x  mixture x")
    mixture_blocks = row_blocks(n_rows, most=256)
    for s in sizes:
        a = torch.randn(s, dim, generator=gen)                                  # (S, D)
        y = torch.softmax(torch.randn(s, n_rows, generator=gen), -1)            # (S, V)
        with torch.no_grad():
            h64 = best_ms(lambda: blocked_head(a, rows, 64), repeats)
            htr = best_ms(lambda: (rows @ a.T).T, repeats)
            m64 = best_ms(mkl(lambda: weights_times_rows(y, rows, 64)), repeats)
            m256 = best_ms(mkl(lambda: weights_times_rows(y, rows, 256)), repeats)
            hmkl = best_ms(mkl(lambda: times_rows_t(a, rows, 64)), repeats)
            hnow = best_ms(lambda: times_rows_t(a, rows, 64), repeats)
            mnow = best_ms(lambda: weights_times_rows(y, rows, mixture_blocks), repeats)
        print(f"{s:<2} {h64:14.1f} {htr:11.1f} {hmkl:4.1f} {hnow:7.1f} | {m64:17.1f} {m256:11.1f} {mnow:7.1f} |"
              f" {h64 / hnow:6.2f} {m64 / mnow:8.2f}")


class _PlainMap(EmbeddingMap):
    """T with every product in the forms fpprov used before few_rows (for the comparison only)."""

    def next_logits(self, x, cache):
        out = self._decoder(inputs_embeds=x[:, None, :], use_cache=False)  # F.linear as transformers calls it
        hidden = out.last_hidden_state[:, -1, :]                                  # (S, D)
        return blocked_head(hidden, self._plain_head.weight, 64).float(), None

    def weights_to_vectors(self, y):
        with without_onednn():
            return weights_times_rows(y.to(self.dtype), self.matrix, 64)         # (S, D)


def whole_map(model: str, sizes: list[int], repeats: int) -> None:
    loaded, _ = load_bench_model(model, "cpu", torch.get_num_threads())
    now, plain = EmbeddingMap(loaded, "effective"), _PlainMap(loaded, "effective")
    if now._plain_head is None:
        raise SystemExit(f"{model}: its head is not a plain Linear; the map runs the model's own forward")
    print(f"T(x) of {model}, effective space (ms, best of {repeats}; public = fpprov's forms without oneDNN, "
          f"what runs when its private ops are missing or fail)")
    print("S  before  public  fpprov  before/fpprov  public/fpprov   decoder: before  public  fpprov")
    with torch.no_grad():
        for s in sizes:
            x = now.initial_vectors(range(s), 0.5)                                # (S, D)
            before, after = best_ms(lambda: plain(x), repeats), best_ms(lambda: now(x), repeats)
            public = best_ms(mkl(lambda: now(x)), repeats)
            dec_before = best_ms(lambda: now._decoder(inputs_embeds=x[:, None, :], use_cache=False), repeats)

            def decoder_now():
                with FewRowLinear():
                    return now._decoder(inputs_embeds=x[:, None, :], use_cache=False)
            print(f"{s:<2} {before:7.1f} {public:7.1f} {after:7.1f} {before / after:14.2f} {public / after:14.2f} "
                  f"{dec_before:17.1f} {best_ms(mkl(decoder_now), repeats):7.1f} {best_ms(decoder_now, repeats):7.1f}")
    cross_batch_drift(now, max(sizes))


def cross_batch_drift(fmap: EmbeddingMap, size: int) -> None:
    """How far T of the same x lies apart when x is evaluated alone and in batches of 2 .. ``size``, with each
    form: max over rows and batch sizes of ||T_batch(x) - T_alone(x)|| (the residual ||T(x) - x|| of an FP
    found in one batch can move by this much in another)."""
    x = fmap.initial_vectors(range(size), 0.5)                                    # (S, D)
    with torch.no_grad():
        for _ in range(20):                                                       # near T's image, like an FP
            x = fmap(x)
        for name, wrap in (("fpprov (oneDNN)", lambda f: f), ("public forms", mkl)):
            alone = torch.cat([wrap(lambda i=i: fmap(x[i:i + 1]))() for i in range(size)])   # (S, D)
            worst = 0.0
            for s in range(2, size + 1):
                together = wrap(lambda: fmap(x[:s]))()                            # (s, D)
                worst = max(worst, float((together - alone[:s]).norm(dim=-1).max()))
            print(f"cross-batch drift of T, {name}: {worst:.3g} (||x|| ~ {float(x.norm(dim=-1).mean()):.3g})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=262144)
    parser.add_argument("--dim", type=int, default=640)
    parser.add_argument("--sizes", default="1,2,3,4,5,6,8,10")
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--model", default=None, help="also time T(x) of this model (alias, path or 'tiny')")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (1 avoids OpenMP spin-waits when other jobs share the cores)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",")]
    products(args.rows, args.dim, sizes, args.repeats)
    if args.model:
        whole_map(args.model, sizes, args.repeats)


if __name__ == "__main__":
    main()
