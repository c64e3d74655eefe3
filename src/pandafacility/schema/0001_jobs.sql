-- Jobs, one row each, and the history of their states (the monitor's plots read it).
-- Statements end with a semicolon at the end of a line; no procedures.
CREATE TABLE IF NOT EXISTS jobs (
    panda_id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    job_definition_id BIGINT NOT NULL DEFAULT 0,
    job_name VARCHAR(255) NOT NULL,
    prod_source_label VARCHAR(32) NOT NULL DEFAULT 'managed',
    transformation VARCHAR(255) NOT NULL DEFAULT '',
    job_parameters MEDIUMTEXT NULL,
    computing_site VARCHAR(128) NOT NULL,
    current_priority INT NOT NULL DEFAULT 1000,
    job_status VARCHAR(16) NOT NULL,
    owner_dn VARCHAR(512) NOT NULL,
    vo VARCHAR(32) NOT NULL DEFAULT 'atlas',
    attempt_nr INT NOT NULL DEFAULT 1,
    max_attempt INT NOT NULL DEFAULT 3,
    core_count INT NULL,
    max_walltime INT NULL,
    creation_time DATETIME(6) NOT NULL,
    modification_time DATETIME(6) NOT NULL,
    state_changed_time DATETIME(6) NOT NULL,
    heartbeat_time DATETIME(6) NULL,
    start_time DATETIME(6) NULL,
    end_time DATETIME(6) NULL,
    pilot_id VARCHAR(255) NULL,
    node VARCHAR(255) NULL,
    trans_exit_code INT NULL,
    pilot_error_code INT NULL,
    pilot_error_diag VARCHAR(500) NULL,
    exe_error_code INT NULL,
    exe_error_diag VARCHAR(500) NULL,
    spec JSON NULL,
    -- Dispatch reads activated jobs of one queue by priority, then age, straight from
    -- this index: with a filesort it would lock every activated row of the queue, and
    -- SKIP LOCKED would then hand concurrent pilots nothing.
    KEY dispatch (computing_site, job_status, current_priority DESC, panda_id),
    -- The reaper and the monitor read jobs by state and time.
    KEY by_state (job_status, heartbeat_time)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS job_states (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    panda_id BIGINT NOT NULL,
    job_status VARCHAR(16) NOT NULL,
    computing_site VARCHAR(128) NOT NULL,
    changed_at DATETIME(6) NOT NULL,
    KEY by_job (panda_id),
    KEY by_time (changed_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
