"""Vector fixed points in embedding space: the map T, both searches, rollouts and a whole study of one model.

A fixed point is x with ||T(x) - x||_2 < tol for T(x) = softmax(logits(x at position 0)) @ E. ``map`` holds T
(its few-row products in ``kernels``), ``search`` the per-seed bookkeeping both searches share, ``iterate``
fixed-point iteration, ``descent`` gradient descent and its protocols, ``rollout`` stability and token
mixtures, ``study`` a whole study of one model stored in the database.

All seeds run in one batch: the model's batch rows are independent, and every seed keeps its own stopping
state (and, for gradient descent, its own optimizer and plateau schedule), so a batched run equals running
the seeds one by one up to floating-point reassociation in the batched matmuls.
"""

from __future__ import annotations

from .descent import (DEFAULT_PROTOCOL, LOSSES, PROTOCOLS, SEED_PROTOCOL, BatchedAdamW, BatchedPlateau,
                      DescentSettings, gradient_descent, protocol_settings, settings_for)
from .iterate import ITERATE_MAX_STEPS, PRECISION_FLOOR_FACTOR, iterate
from .map import EMBEDDINGS, EmbeddingMap, coordinate_scale, default_init_std, effective_embedding_matrix
from .search import METHODS, Finished, SeedOutcome, StepCallback, StepReport

__all__ = ["BatchedAdamW", "BatchedPlateau", "DEFAULT_PROTOCOL", "DescentSettings", "EMBEDDINGS", "EmbeddingMap",
           "Finished", "ITERATE_MAX_STEPS", "LOSSES", "METHODS", "PRECISION_FLOOR_FACTOR", "PROTOCOLS",
           "SEED_PROTOCOL", "SeedOutcome", "StepCallback", "StepReport", "coordinate_scale", "default_init_std",
           "effective_embedding_matrix", "gradient_descent", "iterate", "protocol_settings", "settings_for"]
