-- Schema 4: every encounter keeps its clinical date (診療日, `YYYY-MM-DD`, the day the note describes), so that
-- documents built from a patient's notes (discharge summaries, referral letters) can choose them by date. The date
-- is set once, when the encounter is saved, and never changes: like a version, an encounter row is immutable. The
-- data step (records::migrate_clinical_dates) gives the encounters written before their creation time's local
-- calendar day, then adds the triggers that require a date on insert and refuse UPDATE and DELETE.
-- Why not in the content hash: the hash is per version and covers what a version says; the date belongs to the
-- record (one per encounter, which no edit or amendment can move), and hashing it into new versions would give
-- versions of one record two hash formulas. What vouches for it is the save's audit entry (`sha256=… date=…`),
-- which the audit hash chain covers like every other entry.
ALTER TABLE encounters ADD COLUMN clinical_date TEXT
    CHECK (clinical_date IS NULL OR clinical_date GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]');
CREATE INDEX encounters_by_patient_date ON encounters (patient_ref, clinical_date, created_at_ms);
