-- The global clinical catalog as data every environment starts with, and the one way to change
-- it afterwards: a platform-admin transaction.
--
-- Global rows (`clinic_id IS NULL`) are shared by every clinic. Until now no policy let anyone
-- write them (the write policies compare `clinic_id` with the current clinic), so they could only
-- be inserted by lifting FORCE ROW LEVEL SECURITY. From here on a transaction that has set
-- `app.platform_admin = 'on'` (transaction-local, `set_config(..., true)`) may write global rows,
-- and only global rows: a clinic's own rows stay behind the tenant policies. The server sets it
-- only after verifying the token's `platform_admin` claim (`shared::db::begin_platform`); like
-- `app.clinic_id`, the setting is the database's second wall behind the server's check, not a
-- secret the application role could not set itself.

-- True only inside a platform-admin transaction. `current_setting(..., true)` is NULL when never
-- set and '' after a transaction-local setting ended on a pooled connection: both mean "no".
CREATE FUNCTION app_platform_admin() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT COALESCE(current_setting('app.platform_admin', true), '') = 'on' $$;

GRANT EXECUTE ON FUNCTION app_platform_admin() TO pulso_app;

-- Permissive policies add to the tenant ones (OR): a platform admin may also write global rows.
CREATE POLICY catalog_items_global_insert ON catalog_items FOR INSERT
    WITH CHECK (clinic_id IS NULL AND app_platform_admin());
CREATE POLICY catalog_items_global_update ON catalog_items FOR UPDATE
    USING (clinic_id IS NULL AND app_platform_admin())
    WITH CHECK (clinic_id IS NULL AND app_platform_admin());
CREATE POLICY catalog_items_global_delete ON catalog_items FOR DELETE
    USING (clinic_id IS NULL AND app_platform_admin());

-- No new index: the merged view reads `clinic_id IS NULL AND kind = $k` (served by
-- catalog_items_global_key on (kind, code)) and `clinic_id = $c AND kind = $k` (a prefix of
-- catalog_items_clinic_key on (clinic_id, kind, code)).

-- The seed runs as the migrating owner, who is subject to FORCE ROW LEVEL SECURITY like everyone:
-- it inserts through the platform-admin policy just created. The setting ends with this
-- migration's transaction.
SELECT set_config('app.platform_admin', 'on', true);

-- Procedures: typical private dental prices in Spain (EUR, VAT-exempt healthcare), default
-- appointment length in minutes. Clinics override price, name or availability per clinic.
-- ON CONFLICT DO NOTHING: rows an environment already has (the dev tool used to insert the
-- first six and five insurers) are kept as they are.
INSERT INTO catalog_items (kind, code, name, default_minutes, price_cents)
VALUES
    ('procedure', 'REV',      'Revisión general',                              30,   3500),
    ('procedure', 'LIMP',     'Limpieza dental (profilaxis)',                  45,   5500),
    ('procedure', 'EMP',      'Empaste (obturación)',                          45,   6500),
    ('procedure', 'ENDO',     'Endodoncia',                                    60,  22000),
    ('procedure', 'EXT',      'Extracción',                                    45,   7000),
    ('procedure', 'ORTO',     'Ortodoncia - control',                          30,   6000),
    ('procedure', 'URG',      'Urgencia dental',                               30,   4000),
    ('procedure', 'RX',       'Radiografía periapical',                        15,   1500),
    ('procedure', 'PANO',     'Ortopantomografía (radiografía panorámica)',    15,   3500),
    ('procedure', 'FLUOR',    'Fluorización',                                  15,   2000),
    ('procedure', 'SELL',     'Sellado de fisuras (por pieza)',                20,   2500),
    ('procedure', 'RECON',    'Reconstrucción dental',                         60,   9000),
    ('procedure', 'EXTQ',     'Extracción quirúrgica (muela del juicio)',      60,  15000),
    ('procedure', 'ENDO-MR',  'Endodoncia multirradicular',                    90,  29000),
    ('procedure', 'RAP',      'Raspado y alisado radicular (por cuadrante)',   60,   8000),
    ('procedure', 'PERIO',    'Mantenimiento periodontal',                     45,   7000),
    ('procedure', 'CORONA',   'Corona de zirconio',                            60,  45000),
    ('procedure', 'PUENTE',   'Puente fijo (por pieza)',                       60,  35000),
    ('procedure', 'IMPL',     'Implante dental (cirugía)',                     90,  95000),
    ('procedure', 'PROT',     'Prótesis removible',                            60,  65000),
    ('procedure', 'CARILLA',  'Carilla de porcelana',                          60,  35000),
    ('procedure', 'BLANQ',    'Blanqueamiento dental',                         60,  25000),
    ('procedure', 'FERULA',   'Férula de descarga',                            30,  25000),
    ('procedure', 'ORTO-EST', 'Ortodoncia - estudio',                          60,   9000)
ON CONFLICT (kind, code) WHERE clinic_id IS NULL DO NOTHING;

-- Insurers: no duration and no price of their own.
INSERT INTO catalog_items (kind, code, name)
VALUES
    ('insurer', 'SANITAS',  'Sanitas'),
    ('insurer', 'ADESLAS',  'Adeslas'),
    ('insurer', 'DKV',      'DKV'),
    ('insurer', 'MAPFRE',   'Mapfre'),
    ('insurer', 'ASISA',    'Asisa'),
    ('insurer', 'AXA',      'AXA Salud'),
    ('insurer', 'CASER',    'Caser Salud'),
    ('insurer', 'FIATC',    'FIATC Salud'),
    ('insurer', 'GENERALI', 'Generali Salud'),
    ('insurer', 'CIGNA',    'Cigna'),
    ('insurer', 'MUFACE',   'MUFACE')
ON CONFLICT (kind, code) WHERE clinic_id IS NULL DO NOTHING;
