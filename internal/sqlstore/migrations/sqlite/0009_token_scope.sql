-- A job's token may write only to the job's own tracking run (run_id);
-- NULL: the token's role applies everywhere.
ALTER TABLE tokens ADD COLUMN run_id TEXT;
