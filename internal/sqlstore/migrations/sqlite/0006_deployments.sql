-- Deployments: a serving name routed to a model version (pinned by number
-- or following an alias), with an optional canary and batching settings.
-- The resolved versions are not stored: the controller resolves them again
-- from the registry, so a moved alias is followed after a restart too.
CREATE TABLE deployments (
    name                  TEXT PRIMARY KEY,
    model                 TEXT NOT NULL,
    ref                   TEXT NOT NULL,
    canary_model          TEXT NOT NULL DEFAULT '',
    canary_ref            TEXT NOT NULL DEFAULT '',
    canary_percent        INTEGER NOT NULL DEFAULT 0,
    max_batch_size        INTEGER NOT NULL DEFAULT 0,
    max_queue_delay_us    BIGINT NOT NULL DEFAULT 0,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL
);
