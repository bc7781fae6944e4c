-- The calibrated verify mode: a scan measures its screen's error on a random sample of ids in float64 and
-- re-checks in float64 only the verdicts whose screen margin is within safety_factor times that error.

ALTER TABLE scans ADD COLUMN calibration_error DOUBLE;  -- --verify calibrated: the largest error of a float32 logit difference (own - competitor) measured against float64 on a random sample of ids, floored by the proven bound of the sampled rows; NULL for the other modes
ALTER TABLE scans ADD COLUMN safety_factor DOUBLE;  -- --verify calibrated: the factor on the measured error (calibration_threshold, migration 010; for scans before it, a verdict whose |screen margin| exceeds safety_factor * calibration_error is trusted, every other one decided in float64); NULL for the other modes
