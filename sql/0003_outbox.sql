-- Emails to send, written in the same transaction as the change that asks for them.
-- Workers claim due rows with FOR UPDATE SKIP LOCKED; a claim pushes due_at forward (a
-- lease), so a row whose sender died becomes due again. Tokens are minted at send time and
-- never stored here.
CREATE TABLE outbox (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind       text        NOT NULL CHECK (kind IN ('verification', 'password_reset')),
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    recipient  text        NOT NULL,
    state      text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    attempts   integer     NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    due_at     timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz
);

CREATE INDEX outbox_due_idx ON outbox (due_at) WHERE state = 'pending';
