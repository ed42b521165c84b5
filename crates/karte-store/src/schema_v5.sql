-- Schema 5: dictation recordings, kept while the physician speaks. The window sends the audio about once a second
-- and each piece commits on its own (WAL, synchronous=FULL), so a crash, a closed window or a dead worker loses at
-- most the last second; the recording is offered again at the next sign-in until it is heard or discarded.
-- In the database rather than a file beside it: the audio is then under the store's key (SQLCipher) like every
-- clinical text, with no second key to manage, and a half-written piece is rolled back with its transaction.
-- Not clinical records: a recording is deleted once its text is in the dictation box (or it held no speech), so
-- these tables have no append-only triggers; what happened to it is in the audit chain.
CREATE TABLE recordings (
    id            TEXT PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users (id),
    started_at_ms INTEGER NOT NULL,
    -- 1 while the window may still append; 0 once stopped. Open rows at the next start were cut off by a crash.
    open          INTEGER NOT NULL DEFAULT 1 CHECK (open IN (0, 1)),
    bytes         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX recordings_by_user ON recordings (user_id, started_at_ms);
-- 16-bit little-endian mono PCM at 16 kHz (karte_ipc::voice::CAPTURE_RATE), in the order it was spoken.
CREATE TABLE recording_pieces (
    recording_id TEXT NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    seq          INTEGER NOT NULL,
    pcm          BLOB NOT NULL,
    PRIMARY KEY (recording_id, seq)
) WITHOUT ROWID;
