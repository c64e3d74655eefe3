-- What each pilot factory reports per queue every cycle (the monitor's pilot page and
-- the probes read it), and its history for the plots over time.
CREATE TABLE IF NOT EXISTS pilot_stats (
    queue VARCHAR(128) NOT NULL,
    submit_host VARCHAR(255) NOT NULL,
    idle INT NOT NULL DEFAULT 0,
    running INT NOT NULL DEFAULT 0,
    held INT NOT NULL DEFAULT 0,
    submitted_total BIGINT NOT NULL DEFAULT 0,
    last_error VARCHAR(500) NULL,
    cycle_at DATETIME(6) NOT NULL,
    PRIMARY KEY (queue, submit_host)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS pilot_stats_history (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    queue VARCHAR(128) NOT NULL,
    submit_host VARCHAR(255) NOT NULL,
    idle INT NOT NULL,
    running INT NOT NULL,
    held INT NOT NULL,
    at DATETIME(6) NOT NULL,
    KEY by_queue_time (queue, at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
