-- Metric rollups: each run's history of a key cut into cells of 8, 16 and 64
-- steps (cell = step >> shift), each cell's step and time range, min, max,
-- sum and count of its points (NaN ones not counted). A chart of 10,000
-- steps in 1,000 buckets then reads 1,250 cells, not 10,000 points, and
-- keeps every spike (GET /api/forge/v1/metrics/buckets). Kept up to date
-- by the writes that store points (internal/tracking/rollups.go), in the
-- same transaction: a point logged twice is stored once and counted once.
-- The cells of the points stored before this migration are made here.
CREATE TABLE metric_rollups (
    run_uuid  TEXT NOT NULL,
    key       TEXT NOT NULL,
    shift     INTEGER NOT NULL,  -- 3, 4 or 6: cells of 8, 16 or 64 steps
    cell      BIGINT NOT NULL,   -- step >> shift
    step_min  BIGINT NOT NULL,
    step_max  BIGINT NOT NULL,
    time_min  BIGINT NOT NULL,
    time_max  BIGINT NOT NULL,
    vmin      DOUBLE PRECISION NOT NULL,
    vmax      DOUBLE PRECISION NOT NULL,
    vsum      DOUBLE PRECISION,          -- NULL (or NaN) once +Inf and -Inf were added
    n         BIGINT NOT NULL,
    PRIMARY KEY (run_uuid, key, shift, cell)
);

INSERT INTO metric_rollups
    SELECT run_uuid, key, s.shift, step >> s.shift, min(step), max(step), min(timestamp), max(timestamp), min(value), max(value), sum(value), count(*)
    FROM metrics, (VALUES (3), (4), (6)) AS s(shift)
    WHERE NOT is_nan
    GROUP BY run_uuid, key, s.shift, step >> s.shift;
