-- The rest of what pilots report (reports.EXTRA): CPU unit and conversion, timings,
-- memory and I/O figures, the file and job reports, by the job's attribute names.
ALTER TABLE jobs
    ADD COLUMN IF NOT EXISTS pilot_report JSON NULL;
