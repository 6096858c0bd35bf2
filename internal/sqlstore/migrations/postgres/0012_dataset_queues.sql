-- Dataset versions read from message queues (package datasets with
-- internal/queue). A version's row here is written in the transaction that
-- records the version, so the offsets a version holds and the version exist
-- together or not at all: the next range starts exactly after them.
CREATE TABLE dataset_queue_versions (
    name         TEXT NOT NULL,
    version      BIGINT NOT NULL,
    source       TEXT NOT NULL,            -- the queue URL without credentials
    ranges       TEXT NOT NULL,            -- JSON [{partition,start,next,first,last,messages}]
    from_pos     TEXT NOT NULL DEFAULT '', -- --from as given ('' when continued)
    until_pos    TEXT NOT NULL DEFAULT '',
    dead_letters BIGINT NOT NULL DEFAULT 0,
    dead_digest  TEXT NOT NULL DEFAULT '', -- blob of the dead-letter JSON lines
    PRIMARY KEY (name, version),
    FOREIGN KEY (name, version) REFERENCES dataset_versions(name, version) ON DELETE CASCADE
);

-- Server-side followers: each cuts a new version of name from source on a
-- schedule. Their offsets are the latest dataset_queue_versions row.
CREATE TABLE dataset_follows (
    name        TEXT PRIMARY KEY,
    source      TEXT NOT NULL,             -- without credentials
    every_ms    BIGINT NOT NULL DEFAULT 0,
    every_rows  BIGINT NOT NULL DEFAULT 0,
    schema      TEXT NOT NULL DEFAULT '',  -- col:type,...
    created_by  TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    last_run_at BIGINT NOT NULL DEFAULT 0,
    last_error  TEXT NOT NULL DEFAULT ''
);
