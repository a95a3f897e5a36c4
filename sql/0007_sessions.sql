-- Sessions as their users list them (GET /sessions), and ended sessions as every replica
-- reads them back to refuse their access tokens at once (SPEC §9).
ALTER TABLE refresh_families ADD COLUMN user_agent text;
-- The id of the transaction that ended the session. Readers resume from the oldest
-- transaction still running when they last read (pg_snapshot_xmin), so an end that
-- commits late is never skipped, as it could be by a timestamp.
ALTER TABLE refresh_families ADD COLUMN revoked_xid bigint;
UPDATE refresh_families SET revoked_xid = pg_current_xact_id()::text::bigint
WHERE revoked_at IS NOT NULL;
CREATE INDEX refresh_families_revoked_idx ON refresh_families (revoked_xid, id)
WHERE revoked_xid IS NOT NULL;
