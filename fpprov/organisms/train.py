"""Training an organism: a small RoPE decoder (``LlamaForCausalLM``, tied embeddings) on a tokenized corpus,
saved with ``save_pretrained`` (model and tokenizer) so ``fpprov scan DIR`` loads it like any model.

Owns: the settings (``TrainSettings``), the cache key (fpprov version and this recipe, torch and
transformers versions, corpus hash, tokenizer hash, settings), the training loop (seeded, one thread,
deterministic algorithms, AdamW with warmup and cosine decay, random windows of the token stream), its
checkpoints and resumption, and the atomic save into ``CACHE/<key>``.

Interrupts: a KeyboardInterrupt between optimizer updates saves a checkpoint of the steps done (inside an
update, whose weights may be half-written, the last periodic checkpoint stands) and is re-raised; a rerun
with the same key resumes from the checkpoint and ends with the same weights as an uninterrupted run. The
final folder appears only by a rename once ``organism.json`` is written, so a folder under the key is
always complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

from .. import __version__
from .tokenizer import load_tokenizer, tokenizer_info

RECIPE = "organism/1"   # bump when the training loop changes what a key's weights are
META_FILE = "organism.json"
CHECKPOINT = "checkpoint.pt"
Progress = Callable[[int, int, float], None]   # (steps done, total steps, last loss)


@dataclass(frozen=True)
class TrainSettings:
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    ffn: int = 512
    seq_len: int = 128
    batch_size: int = 32
    steps: int = 1000
    lr: float = 3e-3
    warmup: int = 50               # steps of linear warmup, then cosine decay to min_lr_ratio * lr
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    init_range: float = 0.02
    rope_theta: float = 10000.0
    seed: int = 0
    threads: int = 1
    checkpoint_every: int = 200    # steps; 0: only on Ctrl-C

    def lr_at(self, step: int) -> float:
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        frac = (step - self.warmup) / max(1, self.steps - self.warmup)
        return self.lr * (self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))


@dataclass
class OrganismResult:
    path: str
    key: str
    trained: bool              # False: loaded from the cache
    resumed_from: int          # step a checkpoint resumed from (0: a fresh start)
    steps: int
    corpus_tokens: int
    tokens_seen: int           # steps x batch x seq_len
    seconds: float             # training time of this call (0 when cached)
    tokens_per_s: float
    final_loss: float
    corpus_sha256: str
    tokenizer_sha256: str
    settings: dict


def cache_root() -> Path:
    return Path(os.environ.get("FPPROV_CACHE_DIR") or Path.home() / ".cache" / "fpprov") / "organisms"


def cache_key(corpus_sha256: str, tokenizer_sha256: str, settings: TrainSettings) -> str:
    blob = json.dumps({"recipe": RECIPE, "fpprov": __version__, "torch": torch.__version__,
                       "transformers": transformers.__version__, "corpus": corpus_sha256,
                       "tokenizer": tokenizer_sha256, "settings": asdict(settings)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def texts_sha256(texts: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for t in texts:
        digest.update(json.dumps(t, ensure_ascii=False).encode("utf-8") + b"\n")
    return digest.hexdigest()


def train_organism(texts: Sequence[str], tokenizer_dir: str | Path, settings: TrainSettings = TrainSettings(), *,
                   corpus_sha256: str | None = None, cache_dir: str | Path | None = None,
                   progress: Progress | str | None = "auto", meta: dict | None = None) -> OrganismResult:
    """Train (or load from the cache) an organism on ``texts`` (documents, each followed by EOS) with the
    tokenizer saved in ``tokenizer_dir``. ``corpus_sha256`` defaults to a hash of the texts (pass
    ``Corpus.sha256``); ``meta`` (e.g. the plant plan) is stored in ``organism.json``. ``progress``:
    a callback, None, or "auto" (a rich bar with ETA when stderr is a terminal)."""
    tok = tokenizer_info(tokenizer_dir)
    corpus_sha256 = corpus_sha256 or texts_sha256(texts)
    key = cache_key(corpus_sha256, tok.sha256, settings)
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    final = root / key
    if (final / META_FILE).is_file():
        return OrganismResult(**{**json.loads((final / META_FILE).read_text())["result"], "path": str(final),
                                 "trained": False, "seconds": 0.0, "resumed_from": 0})
    root.mkdir(parents=True, exist_ok=True)
    tokenizer = load_tokenizer(tokenizer_dir)
    stream = _token_stream(tokenizer, texts)   # (N,)
    if stream.numel() < settings.seq_len + 2:
        raise ValueError(f"corpus has {stream.numel()} tokens, fewer than one window of {settings.seq_len + 1}")
    with _training_mode(settings.threads), _progress(progress, settings.steps, key) as report:
        model, done, loss, seconds = _train(stream, tokenizer, settings, root / f".{key}.partial", report)
    tokens_seen = settings.steps * settings.batch_size * settings.seq_len
    fresh = tokens_seen - done * settings.batch_size * settings.seq_len
    result = OrganismResult(path=str(final), key=key, trained=True, resumed_from=done, steps=settings.steps,
                            corpus_tokens=int(stream.numel()), tokens_seen=tokens_seen, seconds=round(seconds, 3),
                            tokens_per_s=round(fresh / seconds, 1) if seconds > 0 else 0.0, final_loss=loss,
                            corpus_sha256=corpus_sha256, tokenizer_sha256=tok.sha256, settings=asdict(settings))
    _save(model, tokenizer, final, result, meta)
    shutil.rmtree(root / f".{key}.partial", ignore_errors=True)
    return result


def _token_stream(tokenizer, texts: Sequence[str]) -> torch.Tensor:
    ids: list[int] = []
    for chunk in range(0, len(texts), 256):
        for doc in tokenizer(list(texts[chunk:chunk + 256]), add_special_tokens=False)["input_ids"]:
            ids.extend(doc)
            ids.append(tokenizer.eos_token_id)
    return torch.tensor(ids, dtype=torch.long)   # (N,)


def build_model(settings: TrainSettings, tokenizer) -> LlamaForCausalLM:
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=settings.d_model, intermediate_size=settings.ffn,
                         num_hidden_layers=settings.n_layers, num_attention_heads=settings.n_heads,
                         num_key_value_heads=settings.n_heads, max_position_embeddings=settings.seq_len,
                         rope_theta=settings.rope_theta, tie_word_embeddings=True,
                         initializer_range=settings.init_range, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(settings.seed)
    return LlamaForCausalLM(config).float()


def _train(stream: torch.Tensor, tokenizer, s: TrainSettings, partial: Path,
           report: Progress | None) -> tuple[LlamaForCausalLM, int, float, float]:
    """(model, step resumed from, last loss, seconds of training in this call)."""
    model = build_model(s, tokenizer)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=s.lr, betas=(0.9, 0.95), weight_decay=s.weight_decay)
    gen = torch.Generator().manual_seed(s.seed + 1)
    start, loss_value = 0, float("nan")
    if (partial / CHECKPOINT).is_file():
        ckpt = torch.load(partial / CHECKPOINT, weights_only=False)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optim"])
        gen.set_state(ckpt["gen"])
        start, loss_value = ckpt["step"], ckpt["loss"]
    offsets = torch.arange(s.seq_len + 1)   # (L+1,)
    step, in_update, gen_state = start, False, gen.get_state()
    began = time.perf_counter()
    try:
        while step < s.steps:
            for group in opt.param_groups:
                group["lr"] = s.lr_at(step)
            starts = torch.randint(0, stream.numel() - s.seq_len - 1, (s.batch_size,), generator=gen)  # (B,)
            batch = stream[starts[:, None] + offsets]              # (B, L+1)
            logits = model(input_ids=batch[:, :-1]).logits         # (B, L, V)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), s.grad_clip)
            in_update = True
            opt.step()
            opt.zero_grad(set_to_none=True)
            step, in_update, loss_value = step + 1, False, float(loss.detach())
            gen_state = gen.get_state()   # the data order after `step` steps
            if s.checkpoint_every and step % s.checkpoint_every == 0 and step < s.steps:
                _checkpoint(partial, model, opt, gen_state, step, loss_value)
            if report is not None:
                report(step, s.steps, loss_value)
    except KeyboardInterrupt:
        if not in_update:   # weights, optimizer and data order are those after `step` steps
            _checkpoint(partial, model, opt, gen_state, step, loss_value)
        raise
    model.eval()
    return model, start, loss_value, time.perf_counter() - began


def _checkpoint(partial: Path, model, opt, gen_state: torch.Tensor, step: int, loss: float) -> None:
    partial.mkdir(parents=True, exist_ok=True)
    tmp = partial / f"{CHECKPOINT}.part"
    torch.save({"model": model.state_dict(), "optim": opt.state_dict(), "gen": gen_state, "step": step,
                "loss": loss}, tmp)
    os.replace(tmp, partial / CHECKPOINT)


def _save(model, tokenizer, final: Path, result: OrganismResult, meta: dict | None) -> None:
    from ..models.checkpoint import quiet_transformers

    quiet_transformers()   # no "Writing model shards" bar from save_pretrained
    building = Path(tempfile.mkdtemp(prefix=f".{final.name}.building-", dir=final.parent))
    try:
        model.save_pretrained(building)
        tokenizer.save_pretrained(building)
        (building / META_FILE).write_text(json.dumps({"result": asdict(result), "meta": meta or {}}, indent=1,
                                                     default=str) + "\n", encoding="utf-8")
        if final.exists():   # only a folder without META_FILE can be here: not a finished organism
            shutil.rmtree(final)
        os.replace(building, final)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise


@contextlib.contextmanager
def _training_mode(threads: int) -> Iterator[None]:
    before_threads, before_det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(before_threads)
        torch.use_deterministic_algorithms(before_det)


@contextlib.contextmanager
def _progress(progress: Progress | str | None, total: int, key: str) -> Iterator[Progress | None]:
    if progress != "auto":
        yield progress
        return
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)
    with Bar(TextColumn("[bold]train[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
             TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(), TimeRemainingColumn(),
             console=Console(stderr=True)) as bar:
        task = bar.add_task(key, total=total, loss="-")

        def report(done: int, _total: int, loss: float) -> None:
            bar.update(task, completed=done, loss=f"{loss:.3f}")

        yield report
