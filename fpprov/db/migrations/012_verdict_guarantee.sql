-- Which computation decided each stored FP verdict, so that every row says what it guarantees (the view
-- fp_guarantees words it): a bfloat16 or float16 scan climbs a ladder (its own screen, a float32 rung, float64
-- re-checks), and a verdict not re-checked in float64 is trusted, not proven.
ALTER TABLE token_fps ADD COLUMN decided_in VARCHAR;
COMMENT ON COLUMN token_fps.decided_in IS
    'the precision whose computation made the verdict: float64 (re-checked one token at a time), float32 (the '
    'scan''s float32 screen, or a bfloat16/float16 scan''s float32 rung), bfloat16 or float16 (that scan''s own '
    'screen, trusted beyond its calibrated threshold); NULL for scans written before this column';
