-- The daily mood answer as a number of its own, so that the mood rules read numbers rather than
-- every earlier answer's JSON on each check-in.
ALTER TABLE check_ins ADD COLUMN mood DOUBLE PRECISION;
UPDATE check_ins SET mood = (answers::jsonb ->> 'mood')::double precision
 WHERE instrument = 'daily_mood' AND jsonb_typeof(answers::jsonb -> 'mood') = 'number';
