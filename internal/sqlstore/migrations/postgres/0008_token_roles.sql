-- Tokens carry a role (read, write or admin) and may expire. Tokens from
-- before roles could do everything, so they keep admin.
ALTER TABLE tokens ADD COLUMN role TEXT NOT NULL DEFAULT 'admin';
ALTER TABLE tokens ADD COLUMN expires_at BIGINT;

-- Browser sessions: the cookie holds a random secret, only its sha256 is
-- stored, tied to the token it was opened with (revoking the token ends
-- its sessions).
CREATE TABLE sessions (
    hash        TEXT PRIMARY KEY,
    token_id    BIGINT NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX sessions_token ON sessions (token_id);
