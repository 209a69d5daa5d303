ALTER TABLE check_ins DROP COLUMN mood;
