-- Experiment tracking, after MLflow's model: experiments, runs, and what runs log.
CREATE TABLE experiments (
    experiment_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    name              TEXT NOT NULL UNIQUE,
    artifact_location TEXT NOT NULL,
    lifecycle_stage   TEXT NOT NULL DEFAULT 'active',
    creation_time     BIGINT NOT NULL,
    last_update_time  BIGINT NOT NULL
);
INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time)
VALUES (0, 'Default', 'mlflow-artifacts:/0', 'active', CAST(strftime('%s','now') AS BIGINT) * 1000, CAST(strftime('%s','now') AS BIGINT) * 1000);

CREATE TABLE experiment_tags (
    experiment_id INTEGER NOT NULL REFERENCES experiments(experiment_id),
    key           TEXT NOT NULL,
    value         TEXT NOT NULL,
    PRIMARY KEY (experiment_id, key)
);

CREATE TABLE runs (
    run_uuid        TEXT PRIMARY KEY,
    experiment_id   INTEGER NOT NULL REFERENCES experiments(experiment_id),
    name            TEXT NOT NULL,
    user_id         TEXT NOT NULL DEFAULT '',
    status          TEXT NOT NULL,
    start_time      BIGINT NOT NULL,
    end_time        BIGINT,
    lifecycle_stage TEXT NOT NULL DEFAULT 'active',
    artifact_uri    TEXT NOT NULL,
    deleted_time    BIGINT
);
CREATE INDEX runs_by_experiment ON runs (experiment_id, lifecycle_stage, start_time);

CREATE TABLE params (
    run_uuid TEXT NOT NULL REFERENCES runs(run_uuid),
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (run_uuid, key)
);
CREATE INDEX params_by_key ON params (key, value);

CREATE TABLE tags (
    run_uuid TEXT NOT NULL REFERENCES runs(run_uuid),
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (run_uuid, key)
);
CREATE INDEX tags_by_key ON tags (key, value);

-- Every metric point ever logged, clustered by run, key and step (one
-- B-tree in SQLite: no separate index to maintain on the hot write path).
CREATE TABLE metrics (
    run_uuid  TEXT NOT NULL REFERENCES runs(run_uuid),
    key       TEXT NOT NULL,
    value     DOUBLE PRECISION NOT NULL,
    is_nan    BOOLEAN NOT NULL DEFAULT FALSE,
    timestamp BIGINT NOT NULL,
    step      BIGINT NOT NULL,
    -- MLflow's key: the same point logged twice is stored once.
    PRIMARY KEY (run_uuid, key, step, timestamp, value, is_nan)
) WITHOUT ROWID;

-- The point MLflow calls "latest": highest step, then timestamp, then value.
-- Search filters and sorts on it.
CREATE TABLE latest_metrics (
    run_uuid  TEXT NOT NULL REFERENCES runs(run_uuid),
    key       TEXT NOT NULL,
    value     DOUBLE PRECISION NOT NULL,
    is_nan    BOOLEAN NOT NULL DEFAULT FALSE,
    timestamp BIGINT NOT NULL,
    step      BIGINT NOT NULL,
    PRIMARY KEY (run_uuid, key)
);
CREATE INDEX latest_metrics_by_key ON latest_metrics (key, value);

CREATE TABLE run_inputs (
    run_uuid       TEXT NOT NULL REFERENCES runs(run_uuid),
    dataset_name   TEXT NOT NULL,
    dataset_digest TEXT NOT NULL,
    source_type    TEXT NOT NULL DEFAULT '',
    source         TEXT NOT NULL DEFAULT '',
    schema         TEXT NOT NULL DEFAULT '',
    profile        TEXT NOT NULL DEFAULT '',
    context        TEXT NOT NULL DEFAULT '',
    tags_json      TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (run_uuid, dataset_name, dataset_digest)
);
CREATE INDEX run_inputs_by_digest ON run_inputs (dataset_digest);

-- Files uploaded through the artifact proxy: a path under the artifact root
-- ("<exp>/<run>/artifacts/model/model.onnx") and the blob holding it.
CREATE TABLE artifact_files (
    path       TEXT PRIMARY KEY,
    digest     TEXT NOT NULL,
    size       BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
