-- What pilots report at the end of a job besides its state (pilot3's final update):
-- the cores it used, CPU time, events, memory, the batch job, its metrics and the tail
-- of the pilot's log (shown only to the job's owner and the monitor's readers).
ALTER TABLE jobs
    ADD COLUMN IF NOT EXISTS actual_core_count INT NULL,
    ADD COLUMN IF NOT EXISTS cpu_consumption_time BIGINT NULL,
    ADD COLUMN IF NOT EXISTS n_events BIGINT NULL,
    ADD COLUMN IF NOT EXISTS max_rss BIGINT NULL,
    ADD COLUMN IF NOT EXISTS batch_id VARCHAR(80) NULL,
    ADD COLUMN IF NOT EXISTS job_metrics VARCHAR(500) NULL,
    ADD COLUMN IF NOT EXISTS pilot_log TEXT NULL;
