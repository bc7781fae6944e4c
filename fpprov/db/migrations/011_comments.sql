-- Every table and column described in the database itself (COMMENT ON), where duckdb_tables() and
-- duckdb_columns() read them back and docs/schema.md is generated from them (python -m fpprov.db.schema_docs).
-- A later migration that adds or changes a table or column adds its COMMENT ON statements too. The views'
-- descriptions sit next to their definitions in fpprov/db/views.sql.

COMMENT ON TABLE schema_version IS
    'Which migrations this database has: one row per applied `fpprov/db/migrations/NNN_name.sql`.';
COMMENT ON COLUMN schema_version.version IS 'migration number (`NNN` of `fpprov/db/migrations/NNN_name.sql`)';
COMMENT ON COLUMN schema_version.name IS 'migration name';
COMMENT ON COLUMN schema_version.applied_at IS 'when it was applied to this file';

COMMENT ON TABLE models IS 'One row per model name: where it was loaded from and its shape.';
COMMENT ON COLUMN models.name IS 'alias (gemma3-270m) or the spec given (hub id; folder or file name)';
COMMENT ON COLUMN models.source_kind IS '''hub'' | ''hub-cache'' | ''directory'' | ''gguf'' | ''gguf-package''';
COMMENT ON COLUMN models.location IS 'hub id, directory or .gguf path actually loaded';
COMMENT ON COLUMN models.hub_id IS 'the model''s hub id when known';
COMMENT ON COLUMN models.family IS 'olmo2 | qwen3 | gemma3 | ... (else the config''s model_type)';
COMMENT ON COLUMN models.variant IS '''base'' | ''inst'' | NULL when unknown';
COMMENT ON COLUMN models.tokenizer_family IS 'tokenizer lineage from the alias file, else NULL';
COMMENT ON COLUMN models.quantization IS 'e.g. ''Q4_K_M GGUF dequantized to float32''; NULL for none';
COMMENT ON COLUMN models.architecture IS 'transformers class, e.g. Gemma3ForCausalLM';
COMMENT ON COLUMN models.vocab_size IS 'len(tokenizer), added tokens included';
COMMENT ON COLUMN models.embedding_rows IS 'rows of the input embedding matrix';
COMMENT ON COLUMN models.hidden_size IS 'hidden size D';
COMMENT ON COLUMN models.num_layers IS 'decoder layers';
COMMENT ON COLUMN models.tied_head IS 'output embedding shares the input embedding''s weight';
COMMENT ON COLUMN models.rotary IS 'rotary position embeddings (the RoPE reduction holds)';
COMMENT ON COLUMN models.updated_at IS 'when the row was last written';

COMMENT ON TABLE scans IS
    'One row per scan (model x dtype x BOS x id range x check length x verify mode), with its settings and '
    'counters.';
COMMENT ON COLUMN scans.scan_id IS 'key: the scan''s id';
COMMENT ON COLUMN scans.model IS 'models.name';
COMMENT ON COLUMN scans.dtype IS 'float32 | float64 | bfloat16 | float16';
COMMENT ON COLUMN scans.device IS 'cpu | cuda:0 ...';
COMMENT ON COLUMN scans.bos IS 'a BOS token was prepended: input [bos, t]';
COMMENT ON COLUMN scans.id_start IS 'first token id of the scanned range';
COMMENT ON COLUMN scans.id_stop IS 'one past the last token id of the range';
COMMENT ON COLUMN scans.batch_size IS 'ids per forward batch (a resumed scan keeps its first run''s)';
COMMENT ON COLUMN scans.commit_every IS 'ids per committed chunk (a resumed scan keeps it)';
COMMENT ON COLUMN scans.tolerance IS
    'relative margin under which a verdict is re-checked in float64 (a resumed scan keeps it)';
COMMENT ON COLUMN scans.check_length IS '--check-length L, else NULL';
COMMENT ON COLUMN scans.verify IS
    'float64 re-checks: ''calibrated'' (verdicts within safety_factor x calibration_error, near ties included) '
    '| ''all'' (every FP + near ties) | ''near''';
COMMENT ON COLUMN scans.method IS
    '''length1-pruned'' (exact length-1 shortcut) | ''forward-pruned'' (the model''s own forward)';
COMMENT ON COLUMN scans.torch_version IS 'torch version used';
COMMENT ON COLUMN scans.transformers_version IS 'transformers version used';
COMMENT ON COLUMN scans.tokenizers_version IS 'tokenizers version used';
COMMENT ON COLUMN scans.fpprov_version IS 'fpprov version used';
COMMENT ON COLUMN scans.started_at IS 'when the scan first started';
COMMENT ON COLUMN scans.finished_at IS 'NULL until complete';
COMMENT ON COLUMN scans.tokens_scanned IS 'ids whose verdict is stored';
COMMENT ON COLUMN scans.tokens_skipped IS
    'ids without both a tokenizer entry and an embedding row, so not scanned';
COMMENT ON COLUMN scans.fp_count IS 'token FPs found';
COMMENT ON COLUMN scans.rechecked IS 'verdicts re-checked in float64';
COMMENT ON COLUMN scans.flipped IS 're-checks whose float64 verdict differs from the screen';
COMMENT ON COLUMN scans.complete IS 'every chunk of the id range is committed';
COMMENT ON COLUMN scans.seconds IS 'wall time spent scanning, summed over resumed runs';
COMMENT ON COLUMN scans.calibration_error IS
    '--verify calibrated: the largest error of a float32 logit difference (own - competitor) measured against '
    'float64 on a random sample of ids, floored by the proven bound of the sampled rows; NULL for the other '
    'modes';
COMMENT ON COLUMN scans.safety_factor IS
    '--verify calibrated: the factor on the measured error (calibration_threshold, migration 010; for scans '
    'before it, a verdict whose |screen margin| exceeds safety_factor * calibration_error is trusted, every '
    'other one decided in float64); NULL for the other modes';
COMMENT ON COLUMN scans.calibration_measured IS
    '--verify calibrated: the largest error of a float32 logit difference (own - competitor) against float64 '
    'over the sampled ids and their 8 best competitors; NULL for the other modes and for scans written before '
    'this migration';
COMMENT ON COLUMN scans.calibration_bound IS
    '--verify calibrated: the largest proven bound on a margin''s float32 error over the sampled ids '
    '(Cauchy-Schwarz; loose by construction); NULL as above';
COMMENT ON COLUMN scans.calibration_threshold IS
    '--verify calibrated: verdicts whose |float32 margin| is at most this are decided in float64: '
    'max(safety_factor * calibration_measured, calibration_bound); NULL as above (those scans used '
    'safety_factor * calibration_error)';

COMMENT ON TABLE scan_chunks IS
    'Chunks of the id range whose results are committed; a resumed scan skips them.';
COMMENT ON COLUMN scan_chunks.scan_id IS 'scans.scan_id';
COMMENT ON COLUMN scan_chunks.chunk_start IS 'first id of the chunk';
COMMENT ON COLUMN scan_chunks.chunk_stop IS 'one past its last id';
COMMENT ON COLUMN scan_chunks.tokens_scanned IS 'ids of the chunk with a stored verdict';
COMMENT ON COLUMN scan_chunks.tokens_skipped IS 'ids of the chunk skipped (see scans.tokens_skipped)';
COMMENT ON COLUMN scan_chunks.fp_count IS 'token FPs found in the chunk';
COMMENT ON COLUMN scan_chunks.committed_at IS 'when the chunk was committed';

COMMENT ON TABLE token_fps IS 'One row per token FP of a scan.';
COMMENT ON COLUMN token_fps.scan_id IS 'scans.scan_id';
COMMENT ON COLUMN token_fps.model IS 'models.name';
COMMENT ON COLUMN token_fps.token_id IS 'the token''s vocabulary id';
COMMENT ON COLUMN token_fps.raw_token IS 'the vocabulary string (e.g. ''Ġblah'', ''▁blah'', ''<0xC3>'')';
COMMENT ON COLUMN token_fps.text IS 'decoded text of the single token';
COMMENT ON COLUMN token_fps.norm_text IS
    'text for matching across tokenizers: leading-space markers (Ġ, ▁) as a space, Unicode NFC';
COMMENT ON COLUMN token_fps.category IS
    'normal | special (the tokenizer''s special tokens) | byte_fragment (decodes to an incomplete UTF-8 '
    'sequence, or a <0xNN> byte token) | unreachable (re-encoding its text does not give the token back)';
COMMENT ON COLUMN token_fps.prob IS 'softmax probability of the token itself for the input [t]';
COMMENT ON COLUMN token_fps.logit IS 'its own logit';
COMMENT ON COLUMN token_fps.runner_up_id IS 'best competitor';
COMMENT ON COLUMN token_fps.runner_up_logit IS 'the best competitor''s logit';
COMMENT ON COLUMN token_fps.margin IS 'logit - runner_up_logit, in the scan dtype (> 0)';
COMMENT ON COLUMN token_fps.verified_float64 IS 're-checked one token at a time in float64 and still an FP';
COMMENT ON COLUMN token_fps.margin_float64 IS
    'the float64 margin, NULL when not re-checked (with --verify near)';
COMMENT ON COLUMN token_fps.length_check IS '[t]*L -> t at the last position (with --check-length), else NULL';

COMMENT ON TABLE scan_rechecks IS
    'Every verdict re-checked in float64: all FPs and the near-ties among non-FPs.';
COMMENT ON COLUMN scan_rechecks.scan_id IS 'scans.scan_id';
COMMENT ON COLUMN scan_rechecks.token_id IS 'the token re-checked';
COMMENT ON COLUMN scan_rechecks.screen_is_fp IS 'verdict of the batched screen in the scan dtype';
COMMENT ON COLUMN scan_rechecks.screen_margin IS
    'own logit minus best competitor in the scan dtype (for rows dropped early, the margin to the competitor '
    'that dropped them)';
COMMENT ON COLUMN scan_rechecks.float64_is_fp IS 'the verdict that counts';
COMMENT ON COLUMN scan_rechecks.float64_margin IS 'own logit minus best competitor, in float64';
COMMENT ON COLUMN scan_rechecks.float64_runner_up_id IS 'the best competitor in float64';

COMMENT ON TABLE vector_runs IS
    'One row per seed and method: how the search from that seed ended. Written as each seed stops, so an '
    'interrupted run resumes with the seeds not yet here.';
COMMENT ON COLUMN vector_runs.run_id IS 'key';
COMMENT ON COLUMN vector_runs.model IS 'models.name';
COMMENT ON COLUMN vector_runs.method IS '''iterate'' (x <- T(x)) | ''gradient'' (AdamW on ||x - T(x)||_2)';
COMMENT ON COLUMN vector_runs.seed IS 'torch seed of x0 ~ N(0, init_std^2)';
COMMENT ON COLUMN vector_runs.settings IS
    'canonical ''key=value ...'' of every setting that changes this method''s result; (model, method, '
    'settings, seed) is unique';
COMMENT ON COLUMN vector_runs.embedding IS
    '''effective'' (embedding module output, e.g. Gemma''s sqrt(D) scale included) | ''raw'' (weight matrix, '
    'the seed''s convention)';
COMMENT ON COLUMN vector_runs.dtype IS 'float32 | float64 | bfloat16 | float16';
COMMENT ON COLUMN vector_runs.device IS 'cpu | cuda:0 ...';
COMMENT ON COLUMN vector_runs.init_std IS 'std of x0 (the config''s initializer_range by default)';
COMMENT ON COLUMN vector_runs.tolerance IS 'converged when ||T(x) - x||_2 < tolerance';
COMMENT ON COLUMN vector_runs.max_steps IS 'step budget';
COMMENT ON COLUMN vector_runs.stall_window IS
    'iterate: steps without a 2x residual drop before giving up; NULL for gradient';
COMMENT ON COLUMN vector_runs.detach IS
    'gradient: loss uses detach(T(x)) (true) or backpropagates through T; NULL for iterate';
COMMENT ON COLUMN vector_runs.lr_initial IS 'gradient: AdamW learning rate at the start; NULL for iterate';
COMMENT ON COLUMN vector_runs.lr_floor IS
    'gradient: the run stops once the plateau schedule takes lr below this';
COMMENT ON COLUMN vector_runs.lr_final IS 'gradient: learning rate when the run stopped';
COMMENT ON COLUMN vector_runs.weight_decay IS 'gradient: AdamW weight decay';
COMMENT ON COLUMN vector_runs.batch_size IS 'seeds that shared the batch with this one';
COMMENT ON COLUMN vector_runs.converged IS 'final residual < tolerance';
COMMENT ON COLUMN vector_runs.stop_reason IS
    'converged | max_steps | not_converging | precision_floor (stalled at the dtype''s rounding of ||x||: '
    'tolerance out of reach) | lr_floor | non_finite';
COMMENT ON COLUMN vector_runs.stop_detail IS 'one line on why it stopped (e.g. the stalled residuals)';
COMMENT ON COLUMN vector_runs.steps IS
    'maps of T evaluated before stopping (updates applied = steps - 1 when converged)';
COMMENT ON COLUMN vector_runs.residual IS '||T(x) - x||_2 of the final x (NaN when non-finite)';
COMMENT ON COLUMN vector_runs.best_residual IS 'smallest residual seen along the way';
COMMENT ON COLUMN vector_runs.vector IS 'the final x (D values), converged or not';
COMMENT ON COLUMN vector_runs.vector_norm IS '||x||_2';
COMMENT ON COLUMN vector_runs.vector_id IS 'vector_fps.vector_id this run found; NULL unless converged';
COMMENT ON COLUMN vector_runs.seconds IS 'wall time from the batch''s start until this seed stopped';
COMMENT ON COLUMN vector_runs.torch_version IS 'torch version used';
COMMENT ON COLUMN vector_runs.transformers_version IS 'transformers version used';
COMMENT ON COLUMN vector_runs.fpprov_version IS 'fpprov version used';
COMMENT ON COLUMN vector_runs.finished_at IS 'when the row was written';
COMMENT ON COLUMN vector_runs.protocol IS
    'gradient: default | seed, ''+custom'' when an option replaced one of its values';
COMMENT ON COLUMN vector_runs.patience IS
    'gradient: ReduceLROnPlateau patience (steps without a relative 1e-4 improvement before a cut)';
COMMENT ON COLUMN vector_runs.lr_factor IS 'gradient: ReduceLROnPlateau factor (each cut multiplies lr by it)';
COMMENT ON COLUMN vector_runs.loss IS
    'gradient: norm (||x - detach(T(x))||, the seed''s) | squared (0.5 ||x - detach(T(x))||^2)';

COMMENT ON TABLE vector_fps IS
    'Deduplicated FPs: converged runs of one (model, embedding, dtype) within dedup_distance are one FP, '
    'whichever seeds and methods found it.';
COMMENT ON COLUMN vector_fps.vector_id IS 'key, stable across reruns';
COMMENT ON COLUMN vector_fps.model IS 'models.name';
COMMENT ON COLUMN vector_fps.embedding IS
    '''effective'' | ''raw'': the space the vector lives in (see vector_runs)';
COMMENT ON COLUMN vector_fps.dtype IS 'dtype of the model the FP was found and checked in';
COMMENT ON COLUMN vector_fps.dim IS 'D, the hidden size';
COMMENT ON COLUMN vector_fps.vector IS
    'the FP x (the first run''s final vector; its id stays stable on reruns)';
COMMENT ON COLUMN vector_fps.vector_norm IS '||x||_2';
COMMENT ON COLUMN vector_fps.residual IS '||T(x) - x||_2 from the run whose vector is stored';
COMMENT ON COLUMN vector_fps.dedup_distance IS 'L2 distance under which two converged vectors are this one FP';
COMMENT ON COLUMN vector_fps.methods IS 'distinct methods that found it, sorted';
COMMENT ON COLUMN vector_fps.seeds IS 'distinct seeds that found it (by any method), sorted';
COMMENT ON COLUMN vector_fps.run_ids IS 'vector_runs.run_id of every run that found it';
COMMENT ON COLUMN vector_fps.n_runs IS 'len(run_ids)';
COMMENT ON COLUMN vector_fps.rollout_feed IS
    '''output'': each step feeds the previous output T (autoregressive decoding); ''x'': each step feeds x '
    'again';
COMMENT ON COLUMN vector_fps.rollout_steps IS 'L, the longest sequence decoded (100)';
COMMENT ON COLUMN vector_fps.rollout_dist_by_l IS
    'element l (1-based) = ||T at position l - x||_2 for sequence length l (KV cache, real positions)';
COMMENT ON COLUMN vector_fps.rollout_dist_max IS
    'max of rollout_dist_by_l (infinity when a distance was not finite)';
COMMENT ON COLUMN vector_fps.stable_threshold IS 'stable means rollout_dist_max < stable_threshold';
COMMENT ON COLUMN vector_fps.stable IS 'the verdict: rollout_dist_max < stable_threshold';
COMMENT ON COLUMN vector_fps.top_k IS 'rows kept in vector_fp_tokens';
COMMENT ON COLUMN vector_fps.entropy IS
    'entropy (nats) of the mixture y = softmax(logits(x)) over all embedding rows';
COMMENT ON COLUMN vector_fps.top_token_id IS 'argmax of y';
COMMENT ON COLUMN vector_fps.top_token_text IS 'its decoded text';
COMMENT ON COLUMN vector_fps.top_weight IS 'its weight in y';
COMMENT ON COLUMN vector_fps.top_token_is_fp IS
    '[t] -> t under greedy decoding (input_ids, no BOS), computed here';
COMMENT ON COLUMN vector_fps.created_at IS 'when the FP was first found';
COMMENT ON COLUMN vector_fps.updated_at IS 'when it was last analysed';

COMMENT ON TABLE vector_fp_tokens IS
    'The top_k tokens of each FP''s mixture y = softmax(logits(x)), x = sum_t y_t E_t.';
COMMENT ON COLUMN vector_fp_tokens.vector_id IS 'vector_fps.vector_id';
COMMENT ON COLUMN vector_fp_tokens.rank IS '1 = heaviest';
COMMENT ON COLUMN vector_fp_tokens.token_id IS 'the token (embedding row) id';
COMMENT ON COLUMN vector_fp_tokens.raw_token IS
    'vocabulary string (e.g. ''Ġblah'', ''▁blah''); NULL for padded rows';
COMMENT ON COLUMN vector_fp_tokens.text IS 'decoded text of the single token';
COMMENT ON COLUMN vector_fp_tokens.weight IS 'y_t';
COMMENT ON COLUMN vector_fp_tokens.is_token_fp IS '[t] -> t under greedy decoding (input_ids, no BOS)';

COMMENT ON TABLE ngram_counts IS 'The cache: one row per query ever sent to a (backend, index).';
COMMENT ON COLUMN ngram_counts.backend IS
    '''api'' (infini-gram API) | ''mini'' (infini-gram-mini) | ''local'' (index dirs)';
COMMENT ON COLUMN ngram_counts.index_name IS
    'backend''s index name, e.g. ''v4_dclm-baseline_llama''; local: ''<dir>@<fingerprint>''';
COMMENT ON COLUMN ngram_counts.query IS 'the exact query string sent (the token text repeated n times)';
COMMENT ON COLUMN ngram_counts.status IS '''ok'' | ''failed'' (failed rows are retried by the next run)';
COMMENT ON COLUMN ngram_counts.count IS 'occurrences of the query in the index; NULL unless status = ''ok''';
COMMENT ON COLUMN ngram_counts.approx IS 'the backend marked the count as approximate';
COMMENT ON COLUMN ngram_counts.token_ids IS
    'the query''s token ids as the backend tokenized it (NULL for byte/char-level backends)';
COMMENT ON COLUMN ngram_counts.tokens IS
    'the same tokens as strings (e.g. [''▁bl'', ''ah'']); NULL for byte/char-level';
COMMENT ON COLUMN ngram_counts.latency_ms IS
    'backend-reported latency (api/mini) or measured engine time (local), ms';
COMMENT ON COLUMN ngram_counts.error IS 'why the query failed (HTTP status, backend error text); NULL when ok';
COMMENT ON COLUMN ngram_counts.attempts IS 'runs that sent this query (a failed row counts up on retry)';
COMMENT ON COLUMN ngram_counts.find_segments IS
    '`find` answer, [lo, hi) match ranks per shard; NULL until documents are sampled';
COMMENT ON COLUMN ngram_counts.queried_at IS 'when the stored answer arrived';

COMMENT ON TABLE provenance IS
    'What each FP token''s query is: one row per (model, token, backend, index, n, spelling variant).';
COMMENT ON COLUMN provenance.model IS 'models.name (token_fps.model)';
COMMENT ON COLUMN provenance.token_id IS 'token_fps.token_id';
COMMENT ON COLUMN provenance.backend IS 'ngram_counts.backend';
COMMENT ON COLUMN provenance.index_name IS 'ngram_counts.index_name';
COMMENT ON COLUMN provenance.n IS 'repetitions of the token text in the query (--ngram / --ladder)';
COMMENT ON COLUMN provenance.variant IS
    '''as_is'' (decoded text) | ''space_added'' ('' '' + text) | ''space_stripped'' (text without its leading '
    'space)';
COMMENT ON COLUMN provenance.token_text IS
    'decoded text of the token (token_fps.text), before the variant is applied';
COMMENT ON COLUMN provenance.category IS 'token_fps.category: normal | special | byte_fragment | unreachable';
COMMENT ON COLUMN provenance.queryable IS 'false: no query can measure this token on this backend (see reason)';
COMMENT ON COLUMN provenance.reason IS
    'why not queryable (e.g. ''byte_fragment: no text form''); NULL when queryable';
COMMENT ON COLUMN provenance.query IS 'ngram_counts.query measuring it; NULL when not queryable';
COMMENT ON COLUMN provenance.index_is_proxy IS
    'the index is a public stand-in for undisclosed training data (Qwen 3, Gemma 3); NULL when unknown (local '
    'corpora, models without alias)';
COMMENT ON COLUMN provenance.updated_at IS 'when the entry was last planned';
COMMENT ON COLUMN provenance.role IS
    '''fp'' (a fixed point of the model) | ''control'' (a matched non-FP token of the same scan)';

COMMENT ON TABLE documents IS
    'Sampled matches of a query: where each is in the index, a snippet, its metadata and source.';
COMMENT ON COLUMN documents.backend IS 'ngram_counts.backend';
COMMENT ON COLUMN documents.index_name IS 'ngram_counts.index_name';
COMMENT ON COLUMN documents.query IS 'ngram_counts.query whose match this document holds';
COMMENT ON COLUMN documents.seed IS 'sampling seed (--seed); the same seed always picks the same matches';
COMMENT ON COLUMN documents.sample_no IS
    'position in the reproducible sample, 0-based (a larger --docs extends it)';
COMMENT ON COLUMN documents.shard IS 'index shard of the match';
COMMENT ON COLUMN documents.rank IS 'rank of the match in the shard''s suffix array (within find_segments)';
COMMENT ON COLUMN documents.status IS '''ok'' | ''failed'' (failed fetches are retried by the next run)';
COMMENT ON COLUMN documents.error IS 'why the fetch failed; NULL when ok';
COMMENT ON COLUMN documents.doc_ix IS 'document number in the index';
COMMENT ON COLUMN documents.doc_len IS 'document length in the backend''s units (tokens, or bytes/characters)';
COMMENT ON COLUMN documents.disp_len IS 'length of the displayed window the snippet comes from';
COMMENT ON COLUMN documents.needle_offset IS 'where the match starts in that window';
COMMENT ON COLUMN documents.snippet IS 'text around the match (a few hundred characters)';
COMMENT ON COLUMN documents.metadata IS
    'the document''s metadata as JSON text ({"path", "linenum", "metadata": {...}} for local indexes)';
COMMENT ON COLUMN documents.source_field IS
    'metadata field the source was read from (--source-field), e.g. ''source''';
COMMENT ON COLUMN documents.source IS
    'the document''s source (value of source_field, else the file path); NULL if unknown';
COMMENT ON COLUMN documents.fetched_at IS 'when the document was fetched';

COMMENT ON TABLE suspicion_thresholds IS
    'One row per rule. Users tune a rule for good with e.g. `UPDATE suspicion_thresholds SET threshold = 0.8 '
    'WHERE rule = ''source_concentration'';` and `fpprov report --threshold source_concentration=0.8` '
    'overrides it for one report without writing (a TEMP table of the same name shadows this one, views '
    'included).';
COMMENT ON COLUMN suspicion_thresholds.rule IS 'rule name (see docs/reports.md)';
COMMENT ON COLUMN suspicion_thresholds.threshold IS 'the rule fires when its value reaches this';
COMMENT ON COLUMN suspicion_thresholds.min_support IS
    'least evidence the rule needs (sampled documents); NULL if none';
COMMENT ON COLUMN suspicion_thresholds.weight IS 'the rule''s weight in the score';
COMMENT ON COLUMN suspicion_thresholds.description IS 'what the rule means';

COMMENT ON TABLE undertrained_runs IS
    'One row per model: how its indicators were computed (a rerun replaces the model''s rows).'
    ' Example: SELECT model, indicator, reference_rule, reference_count, threshold, n_undertrained FROM '
    'undertrained_runs;';
COMMENT ON COLUMN undertrained_runs.model IS 'models.name';
COMMENT ON COLUMN undertrained_runs.indicator IS
    'the main indicator: ''cosine_distance_no_pc1'' (tied models: E_out cosine distance to the reference mean, '
    'first principal component removed; NULL for every id without a reference set) | ''input_norm'' (untied '
    'models, magikarp''s default for them)';
COMMENT ON COLUMN undertrained_runs.reference_rule IS
    'how the reference (known-unused) set was chosen, the first rule that finds ids: ''unused_names'' '
    '(vocabulary entries named like <unused12>) | ''invalid_utf8_bytes'' (single-byte tokens of 0xC0, 0xC1, '
    '0xF5-0xFF, which UTF-8 never uses) | ''unreachable'' (ids the tokenizer never produces) | ''none''';
COMMENT ON COLUMN undertrained_runs.reference_count IS 'ids in the reference set';
COMMENT ON COLUMN undertrained_runs.percentile IS
    'threshold percentile of the indicator among ordinary ids (magikarp''s 2%)';
COMMENT ON COLUMN undertrained_runs.threshold IS
    'indicator value at that percentile; an id at or below it is a candidate';
COMMENT ON COLUMN undertrained_runs.n_tokens IS 'ids with an indicator (the embedding rows)';
COMMENT ON COLUMN undertrained_runs.n_undertrained IS 'candidates (reference ids included)';
COMMENT ON COLUMN undertrained_runs.tied_head IS 'the output embedding is the input embedding';
COMMENT ON COLUMN undertrained_runs.fpprov_version IS 'fpprov that computed the rows';
COMMENT ON COLUMN undertrained_runs.computed_at IS 'when';

COMMENT ON TABLE undertrained_tokens IS
    'Per model and token id, magikarp''s weight-based indicators. Lower = more like the unused tokens.'
    ' Example: SELECT token_id, indicator_value FROM undertrained_tokens WHERE model = ''gemma3-270m'' AND '
    'undertrained ORDER BY indicator_value LIMIT 20;';
COMMENT ON COLUMN undertrained_tokens.model IS 'models.name';
COMMENT ON COLUMN undertrained_tokens.token_id IS 'token id (embedding row)';
COMMENT ON COLUMN undertrained_tokens.is_reference IS 'in the model''s reference (known-unused) set';
COMMENT ON COLUMN undertrained_tokens.is_special IS
    'the tokenizer marks the id special (left out of the threshold''s percentile)';
COMMENT ON COLUMN undertrained_tokens.cosine_distance IS
    '1 - cos(E_out[t], mean of E_out over the reference set); NULL without a reference set';
COMMENT ON COLUMN undertrained_tokens.cosine_distance_no_pc1 IS
    'the same after removing the first principal component of E_out from every row and from the mean';
COMMENT ON COLUMN undertrained_tokens.input_norm IS
    'L2 norm of the input embedding row (magikarp''s indicator for untied models)';
COMMENT ON COLUMN undertrained_tokens.indicator_value IS
    'the main indicator (undertrained_runs.indicator) of this id';
COMMENT ON COLUMN undertrained_tokens.percentile IS
    'share of ordinary ids with a lower-or-equal indicator, in percent';
COMMENT ON COLUMN undertrained_tokens.undertrained IS
    'candidate: indicator_value <= undertrained_runs.threshold';

COMMENT ON TABLE vocabulary IS
    'Every scanned id''s text and category (the scan writes them with each committed chunk): the pool matched '
    'controls are drawn from, since token_fps holds the FPs only.'
    ' Example: SELECT category, count(*) FROM vocabulary WHERE model = ''gemma3-270m'' GROUP BY ALL;';
COMMENT ON COLUMN vocabulary.model IS 'models.name';
COMMENT ON COLUMN vocabulary.token_id IS 'token id';
COMMENT ON COLUMN vocabulary.raw_token IS 'the vocabulary string (e.g. ''Ġblah'', ''▁blah'', ''<0xC3>'')';
COMMENT ON COLUMN vocabulary.text IS 'decoded text of the single token';
COMMENT ON COLUMN vocabulary.norm_text IS 'text for cross-model matching: leading-space markers -> '' '', NFC';
COMMENT ON COLUMN vocabulary.category IS 'normal | special | byte_fragment | unreachable';

COMMENT ON TABLE evidence_runs IS
    'One row per (model, backend, index): the settings of the newest evidence computed for it.'
    ' Example: SELECT model, index_name, fp_total, fp_sampled, sample_rule, controls_k FROM evidence_runs;';
COMMENT ON COLUMN evidence_runs.model IS 'models.name';
COMMENT ON COLUMN evidence_runs.backend IS 'ngram_counts.backend';
COMMENT ON COLUMN evidence_runs.index_name IS 'ngram_counts.index_name';
COMMENT ON COLUMN evidence_runs.n IS 'repetitions the rate is measured at (the run''s largest n)';
COMMENT ON COLUMN evidence_runs.measure IS
    'the per-token statistic: ''(count(t x n) / count(t)) ^ (1 / (n - 1))'', the geometric mean chance that '
    'one more copy follows';
COMMENT ON COLUMN evidence_runs.controls_k IS 'controls drawn per FP (--controls)';
COMMENT ON COLUMN evidence_runs.bin_width IS 'width of the frequency bins on log10(unigram count + 1)';
COMMENT ON COLUMN evidence_runs.seed IS '--seed: token sample, controls, bootstrap and baseline positions';
COMMENT ON COLUMN evidence_runs.fp_total IS 'FPs of the model''s primary scan';
COMMENT ON COLUMN evidence_runs.fp_sampled IS 'FPs taken into the run (all, or the --max-tokens sample)';
COMMENT ON COLUMN evidence_runs.sample_rule IS
    'how they were taken, e.g. ''all'' or ''top 50 by p(t | t) + 50 uniform of the rest''';
COMMENT ON COLUMN evidence_runs.baseline_positions IS
    'random corpus positions behind the source baseline (--baseline-positions)';
COMMENT ON COLUMN evidence_runs.computed_at IS 'when';

COMMENT ON TABLE control_matches IS
    'Each FP''s controls: non-FP tokens of the same scan in the FP''s frequency bin and category.'
    ' Example: SELECT fp_token_id, control_token_id, bin, fp_count, control_count FROM control_matches WHERE '
    'model = ''gemma3-270m'' LIMIT 10;';
COMMENT ON COLUMN control_matches.model IS 'models.name';
COMMENT ON COLUMN control_matches.backend IS 'ngram_counts.backend';
COMMENT ON COLUMN control_matches.index_name IS 'ngram_counts.index_name';
COMMENT ON COLUMN control_matches.fp_token_id IS 'the FP';
COMMENT ON COLUMN control_matches.draw IS '0 .. controls_k - 1: the control''s place among the FP''s controls';
COMMENT ON COLUMN control_matches.control_token_id IS 'the matched non-FP token';
COMMENT ON COLUMN control_matches.bin IS 'floor(log10(unigram count + 1) / bin_width), shared by both';
COMMENT ON COLUMN control_matches.category IS 'token category, shared by both';
COMMENT ON COLUMN control_matches.fp_count IS 'the FP''s unigram count (its text once) in the index';
COMMENT ON COLUMN control_matches.control_count IS 'the control''s unigram count';

COMMENT ON TABLE evidence_exclusions IS
    'Tokens kept out of the comparison, and why: an FP whose text never occurs, one without a control in its '
    'bin, a token without a text form, or one whose count query failed (never stored as a 0).'
    ' Example: SELECT reason, count(*) FROM evidence_exclusions GROUP BY ALL;';
COMMENT ON COLUMN evidence_exclusions.model IS 'models.name';
COMMENT ON COLUMN evidence_exclusions.backend IS 'ngram_counts.backend';
COMMENT ON COLUMN evidence_exclusions.index_name IS 'ngram_counts.index_name';
COMMENT ON COLUMN evidence_exclusions.token_id IS 'the token left out';
COMMENT ON COLUMN evidence_exclusions.role IS '''fp'' | ''control''';
COMMENT ON COLUMN evidence_exclusions.reason IS
    '''zero_unigram_count'' | ''no_control_in_bin'' | ''not_queryable'' | ''count_failed''';

COMMENT ON TABLE fp_enrichment IS
    'FP vs control repetition per (model, index): the table `fpprov sql "FROM fp_enrichment"` reads.'
    ' Example: SELECT model, index_name, n_fp, n_control, round(auc, 3) AS auc, round(auc_low, 3) AS lo, '
    'round(auc_high, 3) AS hi FROM fp_enrichment;';
COMMENT ON COLUMN fp_enrichment.model IS 'models.name';
COMMENT ON COLUMN fp_enrichment.backend IS 'ngram_counts.backend';
COMMENT ON COLUMN fp_enrichment.index_name IS 'ngram_counts.index_name';
COMMENT ON COLUMN fp_enrichment.n IS 'repetitions the rate is measured at';
COMMENT ON COLUMN fp_enrichment.n_fp IS 'FPs compared (with a rate and a control)';
COMMENT ON COLUMN fp_enrichment.n_control IS 'controls compared';
COMMENT ON COLUMN fp_enrichment.auc IS
    'P(FP rate > control rate) + P(tie) / 2: Mann-Whitney U / (n_fp n_control), ties counted half';
COMMENT ON COLUMN fp_enrichment.auc_low IS '95% bootstrap CI of the AUC, lower end';
COMMENT ON COLUMN fp_enrichment.auc_high IS 'upper end';
COMMENT ON COLUMN fp_enrichment.p_value IS 'one-sided Mann-Whitney test (tie-corrected), FP rates greater';
COMMENT ON COLUMN fp_enrichment.median_fp IS 'median rate of the FPs';
COMMENT ON COLUMN fp_enrichment.median_control IS 'median rate of the controls';
COMMENT ON COLUMN fp_enrichment.median_ratio IS 'median_fp / median_control';
COMMENT ON COLUMN fp_enrichment.ratio_low IS '95% bootstrap CI of the median ratio, lower end';
COMMENT ON COLUMN fp_enrichment.ratio_high IS 'upper end';
COMMENT ON COLUMN fp_enrichment.reason IS 'why a statistic is NULL (e.g. ''no controls''), else NULL';

COMMENT ON TABLE token_evidence IS
    'Per token of the comparison (FPs and controls): its counts, rate, and, for FPs, where the rate stands '
    'among the controls of its frequency bin.'
    ' Example: SELECT token_id, rate, percentile, q_value FROM token_evidence WHERE role = ''fp'' ORDER BY '
    'q_value LIMIT 20;';
COMMENT ON COLUMN token_evidence.model IS 'models.name';
COMMENT ON COLUMN token_evidence.backend IS 'ngram_counts.backend';
COMMENT ON COLUMN token_evidence.index_name IS 'ngram_counts.index_name';
COMMENT ON COLUMN token_evidence.token_id IS 'the token';
COMMENT ON COLUMN token_evidence.role IS '''fp'' | ''control''';
COMMENT ON COLUMN token_evidence.unigram_count IS 'count of its text once';
COMMENT ON COLUMN token_evidence.repeat_count IS 'count of its text repeated n times';
COMMENT ON COLUMN token_evidence.rate IS
    '(repeat_count / unigram_count) ^ (1 / (n - 1)): the corpus analogue of p(t | t), in [0, 1]';
COMMENT ON COLUMN token_evidence.bin IS 'its frequency bin';
COMMENT ON COLUMN token_evidence.n_bin_controls IS 'FPs: distinct controls in its bin; NULL for controls';
COMMENT ON COLUMN token_evidence.percentile IS
    'FPs: 100 x share of its bin''s controls with a lower rate; NULL for controls';
COMMENT ON COLUMN token_evidence.percentile_low IS 'FPs: 95% Wilson CI of that share, lower end (percent)';
COMMENT ON COLUMN token_evidence.percentile_high IS 'upper end';
COMMENT ON COLUMN token_evidence.p_value IS
    'FPs: (1 + controls with rate >= the FP''s) / (1 + controls in the bin)';
COMMENT ON COLUMN token_evidence.q_value IS 'FPs: Benjamini-Hochberg q over the model''s FPs in this index';

COMMENT ON TABLE baseline_positions IS
    'Source of each random corpus position behind an index''s source baseline (a rerun reuses them).'
    ' Example: SELECT source, count(*) FROM baseline_positions WHERE status = ''ok'' GROUP BY ALL;';
COMMENT ON COLUMN baseline_positions.backend IS 'ngram_counts.backend';
COMMENT ON COLUMN baseline_positions.index_name IS 'ngram_counts.index_name';
COMMENT ON COLUMN baseline_positions.seed IS 'sampling seed';
COMMENT ON COLUMN baseline_positions.sample_no IS
    '0-based position in the reproducible sample (a larger sample extends it)';
COMMENT ON COLUMN baseline_positions.shard IS 'shard drawn (with probability proportional to its size)';
COMMENT ON COLUMN baseline_positions.rank IS 'uniform suffix-array rank in that shard';
COMMENT ON COLUMN baseline_positions.status IS '''ok'' | ''failed'' (retried by the next run)';
COMMENT ON COLUMN baseline_positions.error IS 'why the lookup failed; NULL when ok';
COMMENT ON COLUMN baseline_positions.doc_ix IS 'the document holding the position';
COMMENT ON COLUMN baseline_positions.metadata IS
    'the document''s metadata as JSON text (as in documents.metadata)';
COMMENT ON COLUMN baseline_positions.source_field IS 'metadata field the source was read from (--source-field)';
COMMENT ON COLUMN baseline_positions.source IS 'its source (documents.source rules); NULL if unknown';
COMMENT ON COLUMN baseline_positions.fetched_at IS 'when';

COMMENT ON TABLE source_enrichment IS
    'Source shares among sampled documents against the corpus baseline: per token and pooled over a model''s '
    'FPs (and, as a second baseline, over its controls).'
    ' Example: SELECT source, docs, round(share, 3) AS share, round(enrichment, 2) AS x, round(enrichment_low, '
    '2) AS lo
FROM source_enrichment WHERE scope = ''pooled'' AND role = ''fp'' ORDER BY enrichment_low DESC;';
COMMENT ON COLUMN source_enrichment.model IS 'models.name';
COMMENT ON COLUMN source_enrichment.backend IS 'ngram_counts.backend';
COMMENT ON COLUMN source_enrichment.index_name IS 'ngram_counts.index_name';
COMMENT ON COLUMN source_enrichment.scope IS
    '''token'' (one token''s documents) | ''pooled'' (every token of the role)';
COMMENT ON COLUMN source_enrichment.token_id IS 'the token (scope ''token''); NULL when pooled';
COMMENT ON COLUMN source_enrichment.role IS '''fp'' | ''control''';
COMMENT ON COLUMN source_enrichment.source IS 'the source, ''(unknown)'' when the document names none';
COMMENT ON COLUMN source_enrichment.docs IS 'sampled documents from this source';
COMMENT ON COLUMN source_enrichment.sampled IS 'all sampled documents of the scope';
COMMENT ON COLUMN source_enrichment.share IS 'docs / sampled';
COMMENT ON COLUMN source_enrichment.share_low IS '95% Wilson CI of the share, lower end';
COMMENT ON COLUMN source_enrichment.share_high IS 'upper end';
COMMENT ON COLUMN source_enrichment.baseline_share IS 'the source''s share of the corpus (corpus_baselines)';
COMMENT ON COLUMN source_enrichment.enrichment IS 'share / baseline_share';
COMMENT ON COLUMN source_enrichment.enrichment_low IS
    '95% bootstrap CI of the enrichment (documents and baseline positions resampled), lower end';
COMMENT ON COLUMN source_enrichment.enrichment_high IS 'upper end';
COMMENT ON COLUMN source_enrichment.reason IS
    'why enrichment is NULL (e.g. ''source not seen among baseline positions'')';
