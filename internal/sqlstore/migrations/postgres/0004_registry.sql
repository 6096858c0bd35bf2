-- Model registry: registered models, their versions, tags, aliases, the
-- files of each version (blob digests, so a version never depends on the
-- run it came from), and the change events that watchers follow.
CREATE TABLE registered_models (
    id                     BIGSERIAL PRIMARY KEY,
    name                   TEXT NOT NULL UNIQUE,
    description            TEXT NOT NULL DEFAULT '',
    creation_timestamp     BIGINT NOT NULL,
    last_updated_timestamp BIGINT NOT NULL,
    -- Version numbers are never reused, even after a delete, as in MLflow.
    next_version           BIGINT NOT NULL DEFAULT 1
);

CREATE TABLE registered_model_tags (
    model_id BIGINT NOT NULL REFERENCES registered_models (id) ON DELETE CASCADE,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (model_id, key)
);

CREATE TABLE model_versions (
    id                     BIGSERIAL PRIMARY KEY,
    model_id               BIGINT NOT NULL REFERENCES registered_models (id) ON DELETE CASCADE,
    version                BIGINT NOT NULL,
    description            TEXT NOT NULL DEFAULT '',
    source                 TEXT NOT NULL DEFAULT '',
    run_id                 TEXT NOT NULL DEFAULT '',
    run_link               TEXT NOT NULL DEFAULT '',
    status                 TEXT NOT NULL,
    status_message         TEXT NOT NULL DEFAULT '',
    current_stage          TEXT NOT NULL DEFAULT 'None',
    format                 TEXT NOT NULL,
    model_file             TEXT NOT NULL DEFAULT '',
    signature              TEXT NOT NULL DEFAULT '',
    creation_timestamp     BIGINT NOT NULL,
    last_updated_timestamp BIGINT NOT NULL,
    UNIQUE (model_id, version)
);
CREATE INDEX model_versions_run_id ON model_versions (run_id);

CREATE TABLE model_version_tags (
    version_id BIGINT NOT NULL REFERENCES model_versions (id) ON DELETE CASCADE,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (version_id, key)
);

CREATE TABLE model_version_files (
    version_id BIGINT NOT NULL REFERENCES model_versions (id) ON DELETE CASCADE,
    path       TEXT NOT NULL,
    digest     TEXT NOT NULL,
    size       BIGINT NOT NULL,
    PRIMARY KEY (version_id, path)
);
CREATE INDEX model_version_files_digest ON model_version_files (digest);

-- An alias names one version of its model; the foreign key makes an alias
-- to a missing version impossible and drops it with its version.
CREATE TABLE registered_model_aliases (
    model_id BIGINT NOT NULL,
    alias    TEXT NOT NULL,
    version  BIGINT NOT NULL,
    PRIMARY KEY (model_id, alias),
    FOREIGN KEY (model_id, version) REFERENCES model_versions (model_id, version) ON DELETE CASCADE
);

CREATE TABLE registry_events (
    seq        BIGSERIAL PRIMARY KEY,
    type       TEXT NOT NULL,
    model      TEXT NOT NULL,
    version    BIGINT NOT NULL DEFAULT 0,
    -- The alias, the new stage or the old name, by type.
    detail     TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);
