-- Training jobs: the durable queue and each attempt's outcome.
CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    state            TEXT NOT NULL,          -- queued|running|succeeded|failed|cancelled
    priority         INTEGER NOT NULL DEFAULT 0,
    submitted_at     BIGINT NOT NULL,
    spec             TEXT NOT NULL,          -- the validated spec, JSON
    cpus             REAL NOT NULL,         -- for the scheduler, per node
    memory_bytes     BIGINT NOT NULL,
    gpus             INTEGER NOT NULL,
    nodes            INTEGER NOT NULL,
    attempt          INTEGER NOT NULL DEFAULT 0,   -- attempts started so far
    handle           TEXT,                   -- the executor's handle of the current attempt
    started_at       BIGINT,
    finished_at      BIGINT,
    exit_code        INTEGER,
    reason           TEXT,
    message          TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    run_id           TEXT,
    experiment_id    TEXT
);
-- One scan in admission order over queued jobs only.
CREATE INDEX jobs_queue ON jobs (priority DESC, submitted_at, id) WHERE state = 'queued';
CREATE INDEX jobs_state ON jobs (state, submitted_at);

CREATE TABLE job_attempts (
    job_id      TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    handle      TEXT,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT,
    exit_code   INTEGER,
    reason      TEXT,
    message     TEXT,
    log_digest  TEXT,
    log_size    BIGINT,
    PRIMARY KEY (job_id, attempt)
);
