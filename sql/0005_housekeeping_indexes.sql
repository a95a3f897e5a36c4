-- Housekeeping purges old rows in bounded batches; each batch finds its rows by index,
-- however large the tables grow.
CREATE INDEX outbox_sent_idx ON outbox (sent_at) WHERE state IN ('sent', 'skipped');
CREATE INDEX outbox_failed_idx ON outbox (created_at) WHERE state = 'failed';
