-- The daily mood answer as a number of its own, so that the mood rules read numbers rather than
-- every earlier answer's JSON on each check-in.
ALTER TABLE check_ins ADD COLUMN mood REAL;
UPDATE check_ins SET mood = json_extract(answers, '$.mood')
 WHERE instrument = 'daily_mood' AND json_type(answers, '$.mood') IN ('integer', 'real');
