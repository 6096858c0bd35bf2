-- Datasets: immutable, content-addressed versions of a named table. The
-- Parquet bytes live in the blob store under digest; these rows are the
-- metadata, and removing them never deletes a blob (blobs may be shared).
CREATE TABLE datasets (
    name         TEXT PRIMARY KEY,
    -- the highest version number ever given, so that a removed version's
    -- number is never reused for other content
    last_version BIGINT NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

CREATE TABLE dataset_versions (
    name        TEXT NOT NULL REFERENCES datasets(name) ON DELETE CASCADE,
    version     BIGINT NOT NULL,
    digest      TEXT NOT NULL,
    n_rows      BIGINT NOT NULL,
    n_bytes     BIGINT NOT NULL,
    schema      TEXT NOT NULL,          -- JSON [{"name","type"}]
    source      TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    created_by  TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    parent      BIGINT,                 -- the latest version when this one was added
    profile     TEXT,                   -- JSON, computed on first request
    PRIMARY KEY (name, version),
    UNIQUE (name, digest)
);
CREATE INDEX dataset_versions_by_digest ON dataset_versions (digest);
