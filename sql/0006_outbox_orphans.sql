-- Reset requests are stored with the account they were for, looked up when they are made;
-- a request for an address without an account (user_id NULL) is never claimed, and is
-- dropped in bulk by the outbox workers, so it never waits in front of real email.
UPDATE outbox o SET user_id = u.id
FROM users u
WHERE o.kind = 'password_reset' AND o.user_id IS NULL AND o.state = 'pending'
  AND lower(u.email) = lower(o.recipient);

DROP INDEX outbox_due_idx;
CREATE INDEX outbox_due_idx ON outbox (due_at, id) WHERE state = 'pending' AND user_id IS NOT NULL;
CREATE INDEX outbox_orphans_idx ON outbox (id) WHERE state = 'pending' AND user_id IS NULL;
