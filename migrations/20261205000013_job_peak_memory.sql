-- The memory (MiB) a job of its kind holds at its peak, copied from its kind when it is staged
-- (`JobKind::with_peak_memory_mib`): the queue's claim takes only the jobs that fit in what the
-- worker has free, so it must know each job's weight before it takes it, and the sweep, which
-- pushes jobs again from this table, must be able to tell Redis. The row says it, like
-- `readers`, because the row outlives any change to the kind's code.
ALTER TABLE jobs ADD COLUMN peak_memory_mib integer NOT NULL DEFAULT 2
    CONSTRAINT jobs_peak_memory_mib_range CHECK (peak_memory_mib BETWEEN 1 AND 10240);

-- Jobs staged before the column existed, whose kinds say more than the default.
UPDATE jobs SET peak_memory_mib = 151 WHERE kind = 'xray.analyze';
UPDATE jobs SET peak_memory_mib = 32 WHERE kind = 'report.insurance';
