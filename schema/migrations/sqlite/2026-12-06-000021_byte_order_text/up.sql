-- SQLite's text already compares byte by byte (its BINARY collation, which no column here
-- overrides); PostgreSQL's migration of the same name makes its text do the same.
SELECT 1;
