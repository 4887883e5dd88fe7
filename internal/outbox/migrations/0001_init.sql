-- The police client's outbox: every report a unit writes, from the moment it
-- is saved on the device until the officer server has decided it.
CREATE TABLE reports (
	id              INTEGER PRIMARY KEY,
	report_id       TEXT    NOT NULL UNIQUE,            -- UUID; the same on every resend
	user            TEXT    NOT NULL,                   -- who wrote it; only they can send it
	server          TEXT    NOT NULL,                   -- host:port it is for
	plate           TEXT    NOT NULL,
	speed           INTEGER NOT NULL,
	speed_limit     INTEGER NOT NULL DEFAULT 0,
	location        TEXT    NOT NULL DEFAULT '',
	observed_at     INTEGER,                            -- unix microseconds; NULL when not given
	created_at      INTEGER NOT NULL,
	state           TEXT    NOT NULL DEFAULT 'queued'
	                CHECK (state IN ('queued', 'sent', 'acknowledged', 'refused', 'approved', 'rejected')),
	attempts        INTEGER NOT NULL DEFAULT 0,         -- times written to a connection
	last_error      TEXT    NOT NULL DEFAULT '',
	next_attempt_at INTEGER NOT NULL,                   -- unix microseconds
	acked_at        INTEGER,
	violation_id    INTEGER,
	decided_status  TEXT    NOT NULL DEFAULT '',        -- APPROVED or REJECTED, as the server said
	decided_reason  TEXT    NOT NULL DEFAULT '',        -- reject reason code
	decided_points  INTEGER NOT NULL DEFAULT 0,
	decided_at      INTEGER
) STRICT;

-- The sender's question: what is due for this user and server?
CREATE INDEX reports_due ON reports (user, server, state, next_attempt_at);
-- The history page: this user's reports, newest first.
CREATE INDEX reports_history ON reports (user, server, id);
