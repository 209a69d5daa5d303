-- Every text column compares byte by byte (COLLATE "C"), as SQLite's text does.
--
-- Ids, hashes, tokens and codes are what the indexes hold, and under a linguistic collation
-- (en_US.UTF-8, even C.UTF-8 before PostgreSQL 17) each comparison in a btree goes through
-- strcoll. Byte order makes those comparisons memcmp, and it makes ORDER BY and the keyset
-- cursors give the same order on both backends whatever locale the database was created with.
-- No query here depends on a locale: the application folds case itself and sends no
-- lower(), upper() or ILIKE.
--
-- New text columns are declared `TEXT COLLATE "C"`; tests/api/schema.rs fails on any that is not.
-- Changing only the collation rewrites no table; each table's indexes are rebuilt once.
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN
        SELECT c.table_name,
               string_agg(format('ALTER COLUMN %I TYPE text COLLATE "C"', c.column_name), ', '
                          ORDER BY c.ordinal_position) AS alters
        FROM information_schema.columns c
        JOIN information_schema.tables b
          ON b.table_schema = c.table_schema AND b.table_name = c.table_name
        WHERE c.table_schema = current_schema()
          AND b.table_type = 'BASE TABLE'
          AND c.data_type = 'text'
          AND c.collation_name IS DISTINCT FROM 'C'
        GROUP BY c.table_name
        ORDER BY c.table_name
    LOOP
        EXECUTE format('ALTER TABLE %I %s', t.table_name, t.alters);
    END LOOP;
END
$$;
