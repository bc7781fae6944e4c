"""Vector fixed points in embedding space: the names of the map T and of both searches, in one place.

A fixed point is x with ||T(x) - x||_2 < tol for T(x) = softmax(logits(x at position 0)) @ E. The pieces
live in their own modules: the map in vector_map (its products in few_rows), the shared bookkeeping in
vector_search, fixed-point iteration in vector_iterate, gradient descent and its protocols in vector_descent.
This module re-exports them so ``from fpprov.vectors import ...`` keeps working.

All seeds run in one batch: the model's batch rows are independent, and every seed keeps its own stopping
state (and, for gradient descent, its own optimizer and plateau schedule), so a batched run equals running
the seeds one by one up to floating-point reassociation in the batched matmuls.
"""

from __future__ import annotations

from .vector_descent import (DEFAULT_PROTOCOL, LOSSES, PROTOCOLS, SEED_PROTOCOL, BatchedAdamW, BatchedPlateau,
                             DescentSettings, gradient_descent, protocol_settings, settings_for)
from .vector_iterate import ITERATE_MAX_STEPS, PRECISION_FLOOR_FACTOR, _stalled, iterate
from .few_rows import row_blocks, times_rows_t, weights_times_rows
from .vector_map import EMBEDDINGS, EmbeddingMap, coordinate_scale, default_init_std, effective_embedding_matrix
from .vector_search import Finished, SeedOutcome, StepCallback, StepReport

METHODS = ("iterate", "gradient")

__all__ = ["BatchedAdamW", "BatchedPlateau", "DEFAULT_PROTOCOL", "DescentSettings", "EMBEDDINGS", "EmbeddingMap",
           "Finished", "ITERATE_MAX_STEPS", "LOSSES", "METHODS", "PRECISION_FLOOR_FACTOR", "PROTOCOLS",
           "SEED_PROTOCOL", "SeedOutcome", "StepCallback", "StepReport", "_stalled", "coordinate_scale",
           "default_init_std", "effective_embedding_matrix", "gradient_descent", "iterate", "protocol_settings",
           "row_blocks", "settings_for", "times_rows_t", "weights_times_rows"]
