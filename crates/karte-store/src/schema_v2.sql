-- Schema 2: the upload outbox (karte-sync). A row is written in the same transaction as the signature it ships
-- (sign, or a signed amendment), so a signed document is either not signed at all or signed and queued: a crash can
-- never leave a signature that will not reach the hospital's platform.

CREATE TABLE outbox (
    -- Sending order: oldest first.
    id              INTEGER PRIMARY KEY,
    encounter_id    TEXT NOT NULL,
    version         INTEGER NOT NULL,
    -- Bundle.identifier (a urn:uuid derived from the store id, encounter and version): the idempotency key the
    -- server deduplicates on, the same for every attempt.
    bundle_id       TEXT NOT NULL UNIQUE,
    -- The bundle_id of the previously signed version of the same encounter: an amendment's document replaces it.
    replaces        TEXT,
    state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    -- Stable error code and the server's or transport's reason of the last failed attempt (no clinical text).
    last_code       TEXT,
    last_reason     TEXT,
    http_status     INTEGER,
    created_at_ms   INTEGER NOT NULL,
    sent_at_ms      INTEGER,
    UNIQUE (encounter_id, version),
    FOREIGN KEY (encounter_id, version) REFERENCES signatures(encounter_id, version)
);

CREATE INDEX outbox_by_state ON outbox (state, id);

CREATE TRIGGER outbox_no_delete BEFORE DELETE ON outbox
BEGIN SELECT RAISE(ABORT, 'outbox rows are kept'); END;
-- Once the server has it, it stays sent: a retry of a sent document would be a duplicate upload.
CREATE TRIGGER outbox_sent_is_final BEFORE UPDATE ON outbox
WHEN OLD.state = 'sent'
BEGIN SELECT RAISE(ABORT, 'a sent document stays sent'); END;
