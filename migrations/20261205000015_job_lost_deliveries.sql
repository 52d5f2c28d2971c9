-- Deliveries of a job that ended with its worker (the lease expired while it ran: the process
-- was killed, ran out of memory, froze). The worker runs many jobs at once, and the job whose
-- handler brought it down cannot be told from the ones beside it, so a lost delivery does not
-- use up an attempt -- up to a point: from the third loss on, each one does, so a job that keeps
-- taking its worker down still ends dead instead of doing it forever.
ALTER TABLE jobs ADD COLUMN lost_deliveries integer NOT NULL DEFAULT 0
    CONSTRAINT jobs_lost_deliveries_not_negative CHECK (lost_deliveries >= 0);
