-- 0001_init: the first TES schema.
--
-- Conventions:
--   * Every time is INTEGER unix microseconds (UTC); NULL where the domain
--     value is the zero time.
--   * Plates, locations and driver records are sealed with internal/atrest
--     (AES-256-GCM). A plate is found through plate_key, the HMAC-SHA256 of
--     the plate under a key derived from the same master key, so the file
--     shows no plate in the clear and still has an index per plate.
--   * Tables are STRICT, so a value of the wrong type is an error, not a
--     silent conversion.

-- meta holds facts about the database itself, such as a value sealed with
-- the at-rest key so that Open can tell a wrong key file at once.
CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT, WITHOUT ROWID;

-- client_keys stores each reporting client's public key once: a million
-- reports signed by the same unit reference one row.
CREATE TABLE client_keys (
    fingerprint TEXT PRIMARY KEY,
    public_key  BLOB
) STRICT;

CREATE TABLE violations (
    id             INTEGER PRIMARY KEY,
    report_id      TEXT UNIQUE,            -- client UUID for idempotent resends; NULL when absent
    plate_key      BLOB    NOT NULL CHECK (length(plate_key) = 32),
    plate_enc      BLOB    NOT NULL,       -- Seal(plate, aad "plate")
    speed          INTEGER NOT NULL CHECK (speed >= 0),
    speed_limit    INTEGER NOT NULL DEFAULT 0 CHECK (speed_limit >= 0),
    location_enc   BLOB,                   -- Seal(location, aad "location"); NULL when empty
    observed_at    INTEGER,
    received_at    INTEGER NOT NULL,
    reported_by    TEXT    NOT NULL,
    suite          TEXT    NOT NULL,
    ev_signed      BLOB,
    ev_sig         BLOB,
    ev_key_fp      TEXT REFERENCES client_keys (fingerprint),
    device_id      TEXT    NOT NULL DEFAULT '',
    sig_verified   INTEGER NOT NULL DEFAULT 0 CHECK (sig_verified IN (0, 1)),
    status         TEXT    NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'APPROVED', 'REJECTED')),
    decided_by     TEXT,
    decided_at     INTEGER,
    reject_reason  TEXT,
    reject_note    TEXT,
    points_applied INTEGER NOT NULL DEFAULT 0,
    -- A decided row says who and when; a pending one does not.
    CHECK ((status = 'PENDING') = (decided_at IS NULL)),
    CHECK ((status = 'PENDING') = (decided_by IS NULL)),
    CHECK (status = 'REJECTED' OR (reject_reason IS NULL AND reject_note IS NULL)),
    CHECK (status = 'APPROVED' OR points_applied = 0)
) STRICT;

-- Dashboard indexes. id is the rowid, which SQLite appends to every index
-- entry of a rowid table, so (status, received_at) is in effect
-- (status, received_at, id): a page ordered by (received_at, id) with a
-- keyset condition on both is one range scan of the index, with no sort.
-- Naming id explicitly would store it a second time in every entry.
CREATE INDEX violations_status_received ON violations (status, received_at);
CREATE INDEX violations_status_speed    ON violations (status, speed);
CREATE INDEX violations_received        ON violations (received_at);
CREATE INDEX violations_speed           ON violations (speed);
CREATE INDEX violations_plate_received  ON violations (plate_key, received_at);
CREATE INDEX violations_reporter        ON violations (reported_by, received_at);
-- ev_key_fp has no index of its own: client_keys rows are never updated or
-- deleted, so the foreign key is only ever checked from the child side, and
-- every index costs the ingest path a B-tree insert per row.

-- A decision is final: no statement may change a decided row's status, and
-- no statement may delete a violation. The store guards this in its UPDATE
-- too; the triggers hold for any other writer.
CREATE TRIGGER violations_decided_final
BEFORE UPDATE OF status, decided_by, decided_at, reject_reason, reject_note, points_applied ON violations
WHEN OLD.status <> 'PENDING'
BEGIN
    SELECT RAISE(ABORT, 'violation already decided');
END;

CREATE TRIGGER violations_no_delete
BEFORE DELETE ON violations
BEGIN
    SELECT RAISE(ABORT, 'violations are never deleted');
END;

-- violation_counts keeps CountByStatus O(1) at a million rows. Ingest adds
-- its batch's new rows once per transaction and Decide moves one row, in the
-- same transactions as the rows themselves; IntegrityCheck compares them
-- with a full count.
CREATE TABLE violation_counts (
    status TEXT PRIMARY KEY CHECK (status IN ('PENDING', 'APPROVED', 'REJECTED')),
    n      INTEGER NOT NULL CHECK (n >= 0)
) STRICT, WITHOUT ROWID;
INSERT INTO violation_counts (status, n) VALUES ('PENDING', 0), ('APPROVED', 0), ('REJECTED', 0);

-- seen_digests is the replay guard: SHA-256 of each TES/1 SESSION's
-- encrypted key (kind 1) and of each DATA message's signed bytes (kind 2).
-- The primary key makes a replay fail across restarts and processes.
CREATE TABLE seen_digests (
    digest BLOB    PRIMARY KEY CHECK (length(digest) = 32),
    kind   INTEGER NOT NULL CHECK (kind IN (1, 2)),
    at     INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- drivers holds each plate's penalty record, sealed as JSON
-- {"plate": ..., "points": ...} with the row's plate_key as additional data,
-- so a record moved to another row does not open.
CREATE TABLE drivers (
    plate_key  BLOB    PRIMARY KEY CHECK (length(plate_key) = 32),
    record_enc BLOB    NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
-- The primary key is appended to a WITHOUT ROWID index, so this orders by
-- (updated_at, plate_key) for the drivers page's keyset.
CREATE INDEX drivers_updated ON drivers (updated_at);

CREATE TABLE users (
    name             TEXT    PRIMARY KEY,
    role             TEXT    NOT NULL CHECK (role IN ('police', 'officer', 'admin')),
    password_hash    TEXT    NOT NULL,
    disabled         INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    must_change_pass INTEGER NOT NULL DEFAULT 0 CHECK (must_change_pass IN (0, 1)),
    failed_logins    INTEGER NOT NULL DEFAULT 0 CHECK (failed_logins >= 0),
    locked_until     INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- Sessions and tokens are stored by the SHA-256 of their secret only.
CREATE TABLE web_sessions (
    id_hash    BLOB    PRIMARY KEY CHECK (length(id_hash) = 32),
    user       TEXT    NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    csrf_token TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX web_sessions_user ON web_sessions (user);

CREATE TABLE api_tokens (
    id_hash    BLOB    PRIMARY KEY CHECK (length(id_hash) = 32),
    name       TEXT    NOT NULL,
    user       TEXT    NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    last_used  INTEGER
) STRICT, WITHOUT ROWID;
CREATE INDEX api_tokens_user ON api_tokens (user);

-- audit is the hash-chained event log (tes.ChainHash). It is append-only:
-- the triggers refuse any change, so a bug cannot rewrite history (someone
-- with the file can, and the chain shows it).
CREATE TABLE audit (
    seq       INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    actor     TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    subject   TEXT    NOT NULL,
    detail    TEXT    NOT NULL,
    prev_hash BLOB,
    hash      BLOB    NOT NULL CHECK (length(hash) = 32)
) STRICT;

CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
