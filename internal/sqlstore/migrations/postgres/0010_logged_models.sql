-- MLflow 3's logged models: a model logged from (or apart from) a run, its
-- artifacts under its experiment's location, with tags and params.
CREATE TABLE logged_models (
    model_id          TEXT PRIMARY KEY,
    experiment_id     INTEGER NOT NULL REFERENCES experiments(experiment_id),
    name              TEXT NOT NULL,
    model_type        TEXT NOT NULL DEFAULT '',
    source_run_id     TEXT NOT NULL DEFAULT '',
    status            TEXT NOT NULL,
    status_message    TEXT NOT NULL DEFAULT '',
    creator_id        TEXT NOT NULL DEFAULT '',
    artifact_uri      TEXT NOT NULL,
    creation_time     BIGINT NOT NULL,
    last_updated_time BIGINT NOT NULL
);
CREATE INDEX logged_models_by_experiment ON logged_models (experiment_id, creation_time);

CREATE TABLE logged_model_tags (
    model_id TEXT NOT NULL REFERENCES logged_models(model_id) ON DELETE CASCADE,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (model_id, key)
);

CREATE TABLE logged_model_params (
    model_id TEXT NOT NULL REFERENCES logged_models(model_id) ON DELETE CASCADE,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (model_id, key)
);

-- runs/log-outputs: the models a run produced, at a step.
CREATE TABLE run_outputs (
    run_uuid TEXT NOT NULL REFERENCES runs(run_uuid),
    model_id TEXT NOT NULL REFERENCES logged_models(model_id) ON DELETE CASCADE,
    step     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (run_uuid, model_id)
);
