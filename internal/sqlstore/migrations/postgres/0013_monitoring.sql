-- Monitoring (packages deploy and monitor). A deployment may log a share
-- of its requests to the dataset payloads.NAME, with the inputs in columns
-- named after its reference dataset's columns; reference is the dataset
-- version it is compared with ('' for the one lineage gives: the dataset
-- the served version's run used as input).
ALTER TABLE deployments ADD COLUMN payload_rate DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE deployments ADD COLUMN reference TEXT NOT NULL DEFAULT '';
ALTER TABLE deployments ADD COLUMN payload_columns TEXT NOT NULL DEFAULT ''; -- JSON list, '' for none

-- Ground truth: a label per logged prediction (a request's row), joined
-- to it by request id and row when quality is computed. A label sent
-- again replaces the first.
CREATE TABLE deployment_feedback (
    deployment  TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    row_index   INTEGER NOT NULL,
    label       TEXT NOT NULL,    -- the label as text (a number, a string; true/false as 1/0)
    created_at  BIGINT NOT NULL,  -- ms since the epoch
    PRIMARY KEY (deployment, request_id, row_index)
);
