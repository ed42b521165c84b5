-- Schema 3: every version keeps its document (kind and structured sections, as JSON), not only its text. The
-- text stays: it is the document's rendering and what the content hash covers. The data step fills `document`
-- for the versions written before (records::migrate_documents), so the immutability trigger is lifted for that
-- step only and put back by it, inside the same transaction.
ALTER TABLE versions ADD COLUMN document TEXT;
DROP TRIGGER versions_no_update;
