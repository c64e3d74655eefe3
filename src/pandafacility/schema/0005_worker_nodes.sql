-- What pilots tell of the machine they run on (pilot3's update_worker_node, once at
-- start) and of their own life (update_worker_status: started, finished), one row per
-- worker node and per pilot, the latest report kept.
CREATE TABLE IF NOT EXISTS worker_nodes (
    site VARCHAR(128) NOT NULL,
    host_name VARCHAR(255) NOT NULL,
    cpu_model VARCHAR(128) NOT NULL,
    panda_queue VARCHAR(128) NULL,
    n_logical_cpus INT NULL,
    n_sockets INT NULL,
    cores_per_socket INT NULL,
    threads_per_core INT NULL,
    cpu_architecture VARCHAR(20) NULL,
    cpu_architecture_level VARCHAR(20) NULL,
    clock_speed DOUBLE NULL,
    total_memory BIGINT NULL,
    total_local_disk BIGINT NULL,
    reported_by VARCHAR(255) NOT NULL,
    last_seen DATETIME(6) NOT NULL,
    PRIMARY KEY (site, host_name, cpu_model)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS pilot_workers (
    harvester_id VARCHAR(64) NOT NULL,
    worker_id BIGINT NOT NULL,
    status VARCHAR(16) NOT NULL,
    node_id VARCHAR(255) NULL,
    reported_by VARCHAR(255) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    PRIMARY KEY (harvester_id, worker_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
