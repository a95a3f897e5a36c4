-- Accounts an operator disabled (SPEC §10): no login, refresh or bearer route until enabled.
ALTER TABLE users ADD COLUMN disabled boolean NOT NULL DEFAULT false;

-- Email changes and their notices go through the outbox like every other email. An
-- email-change row carries the stamp of the account when the change was asked for, so a
-- link sent later is stale if the address or the password changed meanwhile.
ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check CHECK (kind IN
    ('verification', 'password_reset', 'email_change', 'email_change_notice', 'email_changed'));
ALTER TABLE outbox ADD COLUMN stamp bigint;

-- Deleting an account deletes the reset requests typed for its address before it had one.
CREATE INDEX outbox_requests_by_address_idx ON outbox (lower(recipient)) WHERE user_id IS NULL;

-- The ended sessions of deleted accounts. Their rows in refresh_families go with the
-- account, but every replica must still read their ends back (as it reads revoked_xid)
-- until the sessions' access tokens have expired; then housekeeping removes them
-- (keep_until). Nothing here names the account.
CREATE TABLE session_ends (
    id         uuid        PRIMARY KEY,
    ended_at   timestamptz NOT NULL,
    ended_xid  bigint      NOT NULL,
    keep_until timestamptz NOT NULL
);

CREATE INDEX session_ends_xid_idx ON session_ends (ended_xid, id);
CREATE INDEX session_ends_keep_idx ON session_ends (keep_until);
