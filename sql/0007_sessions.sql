-- Sessions as their users list them (GET /sessions), and ended sessions as every replica
-- reads them back to refuse their access tokens at once (SPEC §9).
ALTER TABLE refresh_families ADD COLUMN user_agent text;
CREATE INDEX refresh_families_revoked_idx ON refresh_families (revoked_at) WHERE revoked_at IS NOT NULL;
