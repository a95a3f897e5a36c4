-- Password-reset requests are queued for any address, known or not, so that answering
-- POST /password/forgot costs the same either way; the worker looks the account up when it
-- sends, and marks a request for an unknown address 'skipped' instead of sending it.
ALTER TABLE outbox ALTER COLUMN user_id DROP NOT NULL;
ALTER TABLE outbox DROP CONSTRAINT outbox_state_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_state_check CHECK (state IN ('pending', 'sent', 'failed', 'skipped'));
