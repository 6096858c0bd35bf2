-- The named executor (config `executors:`) that runs a job, and that ran
-- each attempt. Jobs from before named executors ran on the one local
-- executor, which the default configuration names "local".
ALTER TABLE jobs ADD COLUMN executor TEXT NOT NULL DEFAULT 'local';
ALTER TABLE job_attempts ADD COLUMN executor TEXT NOT NULL DEFAULT 'local';
