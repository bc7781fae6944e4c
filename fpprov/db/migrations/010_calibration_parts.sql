-- The calibrated verify mode keeps its two measurements apart (issue 10): the error measured against float64
-- on the sample gets the safety factor, the proven bound of the sampled rows is a floor without it. Before
-- this migration the threshold was safety_factor * calibration_error, with calibration_error their maximum:
-- ten times a loose worst-case bound, which on gemma3-270m sent a third of all verdicts to float64.
-- Example: SELECT scan_id, calibration_measured, calibration_bound, calibration_threshold FROM scans WHERE verify = 'calibrated';
ALTER TABLE scans ADD COLUMN calibration_measured DOUBLE;   -- --verify calibrated: the largest error of a float32 logit difference (own - competitor) against float64 over the sampled ids and their 8 best competitors; NULL for the other modes and for scans written before this migration
ALTER TABLE scans ADD COLUMN calibration_bound DOUBLE;      -- --verify calibrated: the largest proven bound on a margin's float32 error over the sampled ids (Cauchy-Schwarz; loose by construction); NULL as above
ALTER TABLE scans ADD COLUMN calibration_threshold DOUBLE;  -- --verify calibrated: verdicts whose |float32 margin| is at most this are decided in float64: max(safety_factor * calibration_measured, calibration_bound); NULL as above (those scans used safety_factor * calibration_error)
