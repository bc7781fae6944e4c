"""The LM head's vocabulary chunks, its top-k merge and its soft-capping against dense references."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from transformers import Gemma2Config, Gemma2ForCausalLM

from fpprov.scan.head import LMHead, merge_topk, vocab_chunks
from fpprov.models.head_extras import apply_softcap, softcap_of


@pytest.mark.parametrize(("n_rows", "chunk"), [(315, 32), (320, 32), (5, 8), (7, 1), (8, 8), (1, 3)])
def test_vocab_chunks_cover_every_id_once_in_order(n_rows, chunk):
    slices = list(vocab_chunks(n_rows, chunk))
    covered = torch.cat([torch.arange(n_rows)[s] for s in slices])                    # (n_rows,)
    assert torch.equal(covered, torch.arange(n_rows))
    assert all(0 < s.stop - s.start <= chunk for s in slices)
    assert all(s.stop - s.start == chunk for s in slices[:-1])
    assert slices[-1].stop - slices[-1].start == n_rows - chunk * (len(slices) - 1)   # the ragged last one


def _rows_with_ties_and_infs() -> torch.Tensor:
    torch.manual_seed(0)
    dense = torch.randn(6, 103)                                                       # (B, V)
    dense[1, [4, 40, 99]] = dense[1].max() + 1             # a three-way tie for first, across chunks
    dense[2] = torch.randint(0, 3, (103,)).float()         # ties everywhere
    dense[3] = float("-inf")                               # no competitor at all
    dense[4, 10:] = float("-inf")                          # fewer finite values than k
    dense[5, 50] = float("inf")
    return dense


@pytest.mark.parametrize("chunk", [1, 10, 32, 103, 500])
@pytest.mark.parametrize("k", [1, 5, 12])
def test_merge_over_chunks_equals_topk_of_the_dense_row(chunk, k):
    dense = _rows_with_ties_and_infs()                                                # (B, V)
    vals = torch.full((dense.shape[0], k), float("-inf"))                             # (B, k)
    ids = torch.full((dense.shape[0], k), -1, dtype=torch.int64)                      # (B, k)
    for cols in vocab_chunks(dense.shape[1], chunk):
        cvals, cargs = dense[:, cols].topk(min(k, cols.stop - cols.start), -1)        # (B, <=k)
        vals, ids = merge_topk(vals, ids, cvals, cargs + cols.start)
    want = dense.topk(k, -1).values                                                   # (B, k)
    assert torch.equal(vals, want)
    finite = vals > float("-inf")
    # Among ties any id may come first: each finite entry names a distinct id holding exactly that value.
    assert torch.equal(dense.gather(1, ids.clamp(min=0))[finite], vals[finite])
    for row, keep in zip(ids, finite):
        assert len(set(row[keep].tolist())) == int(keep.sum())


class _Model:
    """Just what LMHead reads from a model: an output layer and a config."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, config: Gemma2Config):
        self.out = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
        with torch.no_grad():
            self.out.weight.copy_(weight)
            if bias is not None:
                self.out.bias.copy_(bias)
        self.config = config

    def get_output_embeddings(self) -> torch.nn.Linear:
        return self.out


def _head_and_dense(cap: float | None) -> tuple[LMHead, torch.Tensor, torch.Tensor]:
    """A 101-row head in chunks of 32 (a ragged last one), hidden states and their dense float64 logits."""
    torch.manual_seed(1)
    weight = torch.randn(101, 16)                                                     # (V, D)
    weight[7] = weight[3]                                  # an exact tie: token 3 can never be an FP
    bias = 0.1 * torch.randn(101)                                                     # (V,)
    bias[7] = bias[3]
    config = Gemma2Config(final_logit_softcapping=cap)
    head = LMHead(_Model(weight, bias, config), chunk=32, keep_top=4)
    h = 4 * weight + torch.randn(101, 16)                                             # (B, D): many FPs
    with torch.no_grad():
        dense = apply_softcap(h.double() @ weight.double().T + bias.double(), softcap_of(config))  # (B, V)
    return head, h, dense


@pytest.mark.parametrize("cap", [None, 30.0])
def test_full_rows_and_screen_equal_the_dense_argmax_test(cap):
    head, h, dense = _head_and_dense(cap)
    ids = torch.arange(h.shape[0])
    others = dense.clone()
    others[ids, ids] = float("-inf")                                                  # (B, V)
    want_fp = dense[ids, ids] > others.max(-1).values      # strict: a tie is not an FP
    assert 0 < int(want_fp.sum()) < len(ids) and not want_fp[3] and not want_fp[7]
    is_fp, own, best, best_id, lse = head.full_rows(h, ids, torch.float64)
    assert torch.equal(is_fp, want_fp)
    assert torch.allclose(own, dense[ids, ids], rtol=0, atol=1e-12)
    assert torch.allclose(best, others.max(-1).values, rtol=0, atol=1e-12)
    assert torch.allclose(lse, dense.logsumexp(-1), rtol=0, atol=1e-12)
    assert torch.allclose(others.gather(1, best_id[:, None])[:, 0], best, rtol=0, atol=1e-12)
    assert torch.equal(head.screen(h, ids).is_fp, want_fp)
    vals, top_ids = head.top_competitors(h, ids, 6)                                   # float32 (B, 6) each
    assert torch.allclose(vals.double(), others.topk(6, -1).values, rtol=0, atol=1e-4)
    assert torch.allclose(others.gather(1, top_ids), vals.double(), rtol=0, atol=1e-4)


def test_softcap_is_read_in_one_place_and_matches_the_model_forward():
    config = Gemma2Config(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                          num_attention_heads=2, num_key_value_heads=1, head_dim=8, final_logit_softcapping=0.5)
    torch.manual_seed(2)
    model = Gemma2ForCausalLM(config).eval()
    head = LMHead(model, chunk=16)
    assert head.extras.softcap == softcap_of(model.config) == 0.5
    ids = torch.arange(50)
    with torch.no_grad():
        hidden = model.model(input_ids=ids[:, None]).last_hidden_state[:, -1]         # (B, D)
        want = model(input_ids=ids[:, None]).logits[:, -1]                            # (B, V)
        capped = apply_softcap(model.lm_head(hidden), softcap_of(model.config))       # (B, V)
    assert want.abs().max() < 0.5 and torch.allclose(capped, want, rtol=0, atol=1e-6)
    _, own, best, _, lse = head.full_rows(hidden, ids, torch.float32)
    others = want.clone()
    others[ids, ids] = float("-inf")
    assert torch.allclose(own, want[ids, ids], rtol=0, atol=1e-6)
    assert torch.allclose(best, others.max(-1).values, rtol=0, atol=1e-6)
    assert torch.allclose(lse, want.logsumexp(-1), rtol=0, atol=1e-5)


@pytest.mark.parametrize("value", [None, 0, 0.0])
def test_no_softcap_leaves_logits_alone(value):
    config = SimpleNamespace(final_logit_softcapping=value)
    assert softcap_of(config) is None and softcap_of(SimpleNamespace()) is None
    logits = torch.randn(3, 7)                                                        # (B, V)
    assert apply_softcap(logits, softcap_of(config)) is logits


def test_screen_sweeps_every_row_within_its_reach_whatever_order_the_head_is_read_in():
    head, h, dense = _head_and_dense(None)
    ids = torch.arange(h.shape[0])
    others = dense.clone()
    others[ids, ids] = float("-inf")
    runner_up, runner_up_id = others.max(-1)                                          # (B,)
    gap = (runner_up - dense[ids, ids]).sort().values                                 # (B,)
    misses = gap[gap > 0]
    # A threshold half-way across the widest step between the smallest misses: no row sits near it.
    steps = misses[1:8] - misses[:7]
    cut = int(steps.argmax())
    threshold = float(misses[cut] + misses[cut + 1]) / 2
    want_swept = (runner_up - dense[ids, ids]) < threshold                           # FPs and near misses
    cold = head.screen(h, ids, threshold)
    assert torch.equal(cold.swept, want_swept) and bool((cold.swept & ~cold.is_fp).any())
    swept = cold.swept
    assert torch.allclose(cold.best_other[swept], runner_up[swept], rtol=0, atol=1e-4)
    assert torch.allclose(cold.lse[swept], dense.logsumexp(-1)[swept], rtol=0, atol=1e-4)
    assert bool(torch.isnan(cold.lse[~swept]).all())

    # Seeded with each row's winner, the head reads those first and drops most rows after one chunk: the
    # verdicts are the same, and everything a swept row carries up to the rounding of a GEMM of other rows.
    head.wins.zero_()
    head.wins.index_add_(0, runner_up_id, torch.ones_like(runner_up_id))
    assert head.n_rows > 2 * head.chunk                    # the likely-winners step runs
    seeded = head.screen(h, ids, threshold)
    assert torch.equal(seeded.swept, cold.swept) and torch.equal(seeded.is_fp, cold.is_fp)
    for name in ("best_other_id", "top_ids"):
        assert torch.equal(getattr(seeded, name)[swept], getattr(cold, name)[swept]), name
    for name in ("own_logit", "best_other", "lse", "top_vals"):
        assert torch.allclose(getattr(seeded, name)[swept], getattr(cold, name)[swept], rtol=1e-6, atol=0), name


def test_a_re_check_margin_wider_than_float32s_range_keeps_every_swept_rows_log_sum_exp():
    # With a threshold of 1,000 logits every row is swept, its competitors up to 1,000 past its own logit:
    # exp(-1000) is 0 in float32, so the row's mass must be kept relative to its best logit, not its reach.
    head, h, dense = _head_and_dense(None)
    ids = torch.arange(h.shape[0])
    rows = head.screen(h, ids, 1000.0)
    assert bool(rows.swept.all()) and bool((~rows.is_fp).any())
    assert torch.allclose(rows.lse, dense.logsumexp(-1), rtol=1e-6, atol=0)
