"""Model organisms: small decoders trained on corpora with repetition planted at known doses, to calibrate
fpprov's scan and provenance against ground truth (issue 24).

``sources`` reads real-text sources, ``corpus`` chooses planted words and their twins and plants runs of
them, ``tokenizer`` trains the shared byte-level BPE, ``train`` trains and caches a ``LlamaForCausalLM``
saved with ``save_pretrained`` (so ``fpprov scan DIR`` loads it), and ``build`` ties them together.
"""

from __future__ import annotations

from .build import BuiltOrganism, OrganismSpec, build_organism, shared_tokenizer
from .corpus import Corpus, Doc, Pair, Plant, PlantSpec, build_corpus, choose_pairs, dose_ladder, token_counts
from .sources import read_corpus_dir, stdlib_sources, synthetic_sources
from .tokenizer import TokenizerInfo, load_tokenizer, single_token_id, train_tokenizer
from .train import OrganismResult, TrainSettings, cache_key, train_organism

__all__ = ["BuiltOrganism", "Corpus", "Doc", "OrganismResult", "OrganismSpec", "Pair", "Plant", "PlantSpec",
           "TokenizerInfo", "TrainSettings", "build_corpus", "build_organism", "cache_key", "choose_pairs",
           "dose_ladder", "load_tokenizer", "read_corpus_dir", "shared_tokenizer", "single_token_id",
           "stdlib_sources", "synthetic_sources", "token_counts", "train_organism", "train_tokenizer"]
