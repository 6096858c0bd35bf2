-- Hyperparameter sweeps and their trials (package sweep). A trial's row is
-- written before its job is submitted, so a restart never suggests it twice.
CREATE TABLE sweeps (
    name          TEXT PRIMARY KEY,
    spec          TEXT NOT NULL,          -- the validated spec, JSON
    state         TEXT NOT NULL,          -- running|stopped|finished|failed
    message       TEXT NOT NULL DEFAULT '',
    created_at    BIGINT NOT NULL,
    finished_at   BIGINT,
    parent_run_id TEXT NOT NULL DEFAULT '',
    experiment_id TEXT NOT NULL DEFAULT ''
);

CREATE TABLE sweep_trials (
    sweep      TEXT NOT NULL REFERENCES sweeps(name) ON DELETE CASCADE,
    number     INTEGER NOT NULL,
    params     TEXT NOT NULL,             -- JSON object of the values as text
    state      TEXT NOT NULL,             -- pending|running|complete|failed|cancelled
    job_id     TEXT NOT NULL DEFAULT '',
    run_id     TEXT NOT NULL DEFAULT '',
    logged     INTEGER NOT NULL DEFAULT 0, -- params logged to the run
    value      DOUBLE PRECISION,                     -- the objective, as the trial logged it
    message    TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (sweep, number)
);
