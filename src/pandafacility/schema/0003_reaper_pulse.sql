-- What the reaper heard last: the latest contact from a pilot or a factory that it saw
-- on its previous run, and when contacts last resumed after a silence of the whole
-- facility (an outage: nothing reached any server). One row.
CREATE TABLE IF NOT EXISTS reaper_pulse (
    id TINYINT NOT NULL PRIMARY KEY,
    heard_at DATETIME(6) NULL,
    outage_end DATETIME(6) NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

INSERT IGNORE INTO reaper_pulse (id) VALUES (1);
