-- Monitoring (packages deploy and monitor). A deployment may log a share
-- of its requests to the dataset payloads.NAME, with the inputs in columns
-- named after its reference dataset's columns; reference is the dataset
-- version it is compared with ('' for the one lineage gives: the dataset
-- the served version's run used as input).
ALTER TABLE deployments ADD COLUMN payload_rate REAL NOT NULL DEFAULT 0;
ALTER TABLE deployments ADD COLUMN reference TEXT NOT NULL DEFAULT '';
ALTER TABLE deployments ADD COLUMN payload_columns TEXT NOT NULL DEFAULT ''; -- JSON list, '' for none

-- Ground truth: a label per logged request, joined to the logged
-- prediction by request id when quality is computed.
CREATE TABLE deployment_feedback (
    deployment  TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    label       TEXT NOT NULL,  -- JSON: a number, a string or a bool
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (deployment, request_id)
);
