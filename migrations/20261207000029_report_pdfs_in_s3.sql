-- Report PDFs in object storage (issue 16 §3): a ready report's PDF is in S3 under
-- `clinics/{clinic}/reports/{id}.pdf` (`shared::media`); the row keeps the key and the size.
-- Reports made before keep their bytes in `pdf` until the media move puts them in S3; a ready
-- report has its PDF in one place or the other, never in neither.
ALTER TABLE reports
    ADD COLUMN pdf_key text
        CHECK (pdf_key ~ '^clinics/[0-9a-f-]{36}/reports/[0-9a-f-]{36}\.pdf$'),
    ADD COLUMN pdf_size integer CHECK (pdf_size > 0),
    ADD CONSTRAINT reports_pdf_key_size CHECK ((pdf_key IS NULL) = (pdf_size IS NULL));

ALTER TABLE reports DROP CONSTRAINT reports_ready_has_pdf;
ALTER TABLE reports ADD CONSTRAINT reports_ready_has_pdf
    CHECK (status <> 'ready' OR pdf IS NOT NULL OR pdf_key IS NOT NULL);
