-- Karte record store, schema 1. Every clinical row is append-only: triggers refuse UPDATE and DELETE, so a signed
-- version can only be superseded by a new one (an amendment), never changed. The triggers guard against bugs; the
-- audit hash chain and the content hashes are what detect a person editing the file with the key.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE users (
    id               INTEGER PRIMARY KEY,
    name             TEXT NOT NULL UNIQUE,
    role             TEXT NOT NULL CHECK (role IN ('physician', 'nurse', 'admin')),
    password_hash    TEXT NOT NULL,
    totp_secret      BLOB NOT NULL,
    -- The last RFC 6238 time step accepted: a code is good once (RFC 6238 section 5.2).
    totp_last_step   INTEGER NOT NULL DEFAULT 0,
    failed_attempts  INTEGER NOT NULL DEFAULT 0,
    locked_until_ms  INTEGER NOT NULL DEFAULT 0,
    disabled         INTEGER NOT NULL DEFAULT 0,
    created_at_ms    INTEGER NOT NULL
);

CREATE TABLE encounters (
    id            TEXT PRIMARY KEY,
    patient_ref   TEXT NOT NULL,
    created_by    INTEGER NOT NULL REFERENCES users(id),
    created_at_ms INTEGER NOT NULL
);

CREATE TABLE versions (
    encounter_id   TEXT NOT NULL REFERENCES encounters(id),
    version        INTEGER NOT NULL CHECK (version >= 1),
    kind           TEXT NOT NULL CHECK (kind IN ('draft', 'edit', 'amendment')),
    author_id      INTEGER NOT NULL REFERENCES users(id),
    created_at_ms  INTEGER NOT NULL,
    note_text      TEXT NOT NULL,
    dictation      TEXT,
    draft_json     TEXT,
    reason         TEXT,
    -- sha256 over the clinical content (see records::content_hash); also written to the audit entry of the save.
    content_sha256 TEXT NOT NULL,
    PRIMARY KEY (encounter_id, version)
);

CREATE TABLE signatures (
    encounter_id TEXT NOT NULL,
    version      INTEGER NOT NULL,
    signer_id    INTEGER NOT NULL REFERENCES users(id),
    signed_at_ms INTEGER NOT NULL,
    PRIMARY KEY (encounter_id, version),
    FOREIGN KEY (encounter_id, version) REFERENCES versions(encounter_id, version)
);

CREATE TABLE reviews (
    id            INTEGER PRIMARY KEY,
    encounter_id  TEXT NOT NULL REFERENCES encounters(id),
    suggestion    INTEGER NOT NULL CHECK (suggestion >= 1),
    decision      TEXT NOT NULL CHECK (decision IN ('accept', 'reject')),
    comment       TEXT NOT NULL,
    reviewer_id   INTEGER NOT NULL REFERENCES users(id),
    created_at_ms INTEGER NOT NULL
);

CREATE TABLE audit (
    seq         INTEGER PRIMARY KEY,
    ts_ms       INTEGER NOT NULL,
    user        TEXT,
    role        TEXT,
    action      TEXT NOT NULL,
    encounter   TEXT,
    version     INTEGER,
    outcome     TEXT NOT NULL,
    workstation TEXT NOT NULL,
    detail      TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);

CREATE TRIGGER versions_no_update BEFORE UPDATE ON versions
BEGIN SELECT RAISE(ABORT, 'versions are immutable'); END;
CREATE TRIGGER versions_no_delete BEFORE DELETE ON versions
BEGIN SELECT RAISE(ABORT, 'versions are immutable'); END;
CREATE TRIGGER signatures_no_update BEFORE UPDATE ON signatures
BEGIN SELECT RAISE(ABORT, 'signatures are immutable'); END;
CREATE TRIGGER signatures_no_delete BEFORE DELETE ON signatures
BEGIN SELECT RAISE(ABORT, 'signatures are immutable'); END;
CREATE TRIGGER reviews_no_update BEFORE UPDATE ON reviews
BEGIN SELECT RAISE(ABORT, 'reviews are immutable'); END;
CREATE TRIGGER reviews_no_delete BEFORE DELETE ON reviews
BEGIN SELECT RAISE(ABORT, 'reviews are immutable'); END;
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
-- Once the latest version is signed, only an amendment may follow it.
CREATE TRIGGER versions_signed_lock BEFORE INSERT ON versions
WHEN NEW.kind <> 'amendment' AND EXISTS (
    SELECT 1 FROM signatures s
    WHERE s.encounter_id = NEW.encounter_id
      AND s.version = (SELECT max(v.version) FROM versions v WHERE v.encounter_id = NEW.encounter_id))
BEGIN SELECT RAISE(ABORT, 'a signed record changes only by amendment'); END;
