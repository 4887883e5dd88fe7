-- 0002_devices: join tokens and enrolled devices for the TLS suite
-- (internal/sqlite/migrations/0002_devices.sql on PostgreSQL).
--
-- A join token is stored without its secret: verifier is the Ed25519 public
-- key derived from the secret (internal/enroll). A token is redeemed at most
-- once, on any node: the enrolment's UPDATE is guarded on used_at and
-- revoked_at being NULL, and the device row shares the token's id.

CREATE TABLE join_tokens (
    id         text COLLATE "C" PRIMARY KEY CHECK (length(id) = 16),
    verifier   bytea            NOT NULL CHECK (octet_length(verifier) = 32),
    user_name  text COLLATE "C" NOT NULL REFERENCES users (name),
    created_by text             NOT NULL,
    created_at timestamptz      NOT NULL,
    expires_at timestamptz      NOT NULL,
    used_at    timestamptz,
    revoked_at timestamptz,
    CHECK (used_at IS NULL OR revoked_at IS NULL)
);

CREATE TABLE devices (
    id          text COLLATE "C" PRIMARY KEY REFERENCES join_tokens (id),
    user_name   text COLLATE "C" NOT NULL REFERENCES users (name),
    key_fp      text             NOT NULL UNIQUE,
    cert        bytea            NOT NULL,
    enrolled_at timestamptz      NOT NULL,
    revoked_at  timestamptz,
    revoked_by  text,
    CHECK ((revoked_at IS NULL) = (revoked_by IS NULL))
);

-- A revocation is final, and an enrolled device is never deleted: its
-- certificate is what a third party checks old evidence against.
CREATE TRIGGER devices_revocation_final
    BEFORE UPDATE ON devices
    FOR EACH ROW WHEN (OLD.revoked_at IS NOT NULL)
    EXECUTE FUNCTION tes_refuse('device already revoked');
CREATE TRIGGER devices_no_delete
    BEFORE DELETE ON devices
    FOR EACH ROW EXECUTE FUNCTION tes_refuse('devices are never deleted');
CREATE TRIGGER devices_no_truncate
    BEFORE TRUNCATE ON devices
    FOR EACH STATEMENT EXECUTE FUNCTION tes_refuse('devices are never deleted');
