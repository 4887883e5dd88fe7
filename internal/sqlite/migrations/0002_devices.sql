-- 0002_devices: join tokens and enrolled devices for the TLS suite.
--
-- A join token is stored without its secret: verifier is the Ed25519 public
-- key derived from the secret (internal/enroll), so the database holds
-- nothing that can enroll a device. A token is redeemed at most once: the
-- enrolment's UPDATE is guarded on used_at and revoked_at being NULL, and
-- the device row shares the token's id.

CREATE TABLE join_tokens (
    id         TEXT    PRIMARY KEY CHECK (length(id) = 16),
    verifier   BLOB    NOT NULL CHECK (length(verifier) = 32),
    user       TEXT    NOT NULL REFERENCES users (name),
    created_by TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    revoked_at INTEGER,
    CHECK (used_at IS NULL OR revoked_at IS NULL)
) STRICT, WITHOUT ROWID;

CREATE TABLE devices (
    id          TEXT    PRIMARY KEY REFERENCES join_tokens (id),
    user        TEXT    NOT NULL REFERENCES users (name),
    key_fp      TEXT    NOT NULL UNIQUE,
    cert        BLOB    NOT NULL,
    enrolled_at INTEGER NOT NULL,
    revoked_at  INTEGER,
    revoked_by  TEXT,
    CHECK ((revoked_at IS NULL) = (revoked_by IS NULL))
) STRICT, WITHOUT ROWID;

-- A revocation is final, and an enrolled device is never deleted: its
-- certificate is what a third party checks old evidence against.
CREATE TRIGGER devices_revocation_final
BEFORE UPDATE ON devices
WHEN OLD.revoked_at IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'device already revoked');
END;

CREATE TRIGGER devices_no_delete
BEFORE DELETE ON devices
BEGIN
    SELECT RAISE(ABORT, 'devices are never deleted');
END;
