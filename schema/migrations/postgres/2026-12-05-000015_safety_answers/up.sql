-- Safety answers at the edges of form, time, concurrency and lifecycle:
-- * check-ins: complete or incomplete (a safety answer stored whatever else is wrong with it, its
--   problems listed), a digest of the answers alone (identical answers re-sent under a new id
--   within minutes are the same check-in), and amendments (the same id re-sent with a higher
--   safety answer; the versions it replaced are kept);
-- * alert events name the check-in of each signal (retention keeps a check-in an unresolved
--   alert names), and an alert whose patient was erased says so;
-- * a patient may decline a new consent document version (prompts go on under an earlier
--   acceptance until then);
-- * one unresolved alert per patient and rule, enforced by a unique partial index.

ALTER TABLE check_ins ADD COLUMN status TEXT NOT NULL DEFAULT 'complete'
    CHECK (status IN ('complete', 'incomplete'));
ALTER TABLE check_ins ADD COLUMN problems TEXT;
ALTER TABLE check_ins ADD COLUMN answers_hash TEXT;
ALTER TABLE check_ins ADD COLUMN amended_at TIMESTAMP;
ALTER TABLE check_ins ADD COLUMN earlier_versions TEXT;
CREATE INDEX check_ins_patient_answers_idx ON check_ins (patient_id, answers_hash, received_at);

ALTER TABLE alert_events ADD COLUMN check_in_id TEXT;
CREATE INDEX alert_events_check_in_idx ON alert_events (check_in_id);
ALTER TABLE alerts ADD COLUMN patient_erased_at TIMESTAMP;

ALTER TABLE consent_records DROP CONSTRAINT consent_records_action_check;
ALTER TABLE consent_records ADD CONSTRAINT consent_records_action_check
    CHECK (action IN ('accept', 'withdraw', 'decline'));

-- One unresolved alert per patient and rule, enforced by the database. Duplicates left by
-- concurrent check-ins before this migration are merged first: per patient and rule the
-- survivor is an open alert if there is one (its escalation jobs keep running), else the
-- earliest opened; it takes the sum of the signals, the highest severity and the latest signal's
-- details, every event of the others (so each signal stays in its history), and a `merged` event
-- per alert merged into it. The others are then removed (a job still queued for one of them
-- finds it gone and stands down).
CREATE TABLE alert_merge (
    duplicate_id TEXT PRIMARY KEY,
    survivor_id  TEXT NOT NULL
);
INSERT INTO alert_merge (duplicate_id, survivor_id)
SELECT a.id,
       (SELECT s.id FROM alerts s
        WHERE s.patient_id = a.patient_id AND s.rule = a.rule AND s.status <> 'resolved'
        ORDER BY CASE WHEN s.status = 'open' THEN 0 ELSE 1 END, s.opened_at, s.id
        LIMIT 1)
FROM alerts a
WHERE a.status <> 'resolved';
DELETE FROM alert_merge WHERE duplicate_id = survivor_id;

-- The latest signal's details, read before last_signal_at changes.
UPDATE alerts SET
    explanation = (SELECT g.explanation FROM alerts g
                   WHERE g.id = alerts.id OR g.id IN (SELECT m.duplicate_id FROM alert_merge m WHERE m.survivor_id = alerts.id)
                   ORDER BY g.last_signal_at DESC, g.id DESC LIMIT 1),
    inputs = (SELECT g.inputs FROM alerts g
              WHERE g.id = alerts.id OR g.id IN (SELECT m.duplicate_id FROM alert_merge m WHERE m.survivor_id = alerts.id)
              ORDER BY g.last_signal_at DESC, g.id DESC LIMIT 1),
    check_in_id = (SELECT g.check_in_id FROM alerts g
                   WHERE g.id = alerts.id OR g.id IN (SELECT m.duplicate_id FROM alert_merge m WHERE m.survivor_id = alerts.id)
                   ORDER BY g.last_signal_at DESC, g.id DESC LIMIT 1),
    signal_completed_at = (SELECT g.signal_completed_at FROM alerts g
                           WHERE g.id = alerts.id OR g.id IN (SELECT m.duplicate_id FROM alert_merge m WHERE m.survivor_id = alerts.id)
                           ORDER BY g.last_signal_at DESC, g.id DESC LIMIT 1),
    signal_received_at = (SELECT g.signal_received_at FROM alerts g
                          WHERE g.id = alerts.id OR g.id IN (SELECT m.duplicate_id FROM alert_merge m WHERE m.survivor_id = alerts.id)
                          ORDER BY g.last_signal_at DESC, g.id DESC LIMIT 1)
WHERE id IN (SELECT survivor_id FROM alert_merge);

UPDATE alerts SET
    signal_count = signal_count + (SELECT COALESCE(SUM(d.signal_count), 0) FROM alerts d
                                   WHERE d.id IN (SELECT m.duplicate_id FROM alert_merge m WHERE m.survivor_id = alerts.id)),
    last_signal_at = (SELECT MAX(g.last_signal_at) FROM alerts g
                      WHERE g.id = alerts.id OR g.id IN (SELECT m.duplicate_id FROM alert_merge m WHERE m.survivor_id = alerts.id)),
    severity_rank = (SELECT MAX(g.severity_rank) FROM alerts g
                     WHERE g.id = alerts.id OR g.id IN (SELECT m.duplicate_id FROM alert_merge m WHERE m.survivor_id = alerts.id))
WHERE id IN (SELECT survivor_id FROM alert_merge);

UPDATE alerts SET severity = CASE severity_rank
        WHEN 4 THEN 'urgent' WHEN 3 THEN 'high' WHEN 2 THEN 'medium' ELSE 'low' END
WHERE id IN (SELECT survivor_id FROM alert_merge);

UPDATE alert_events SET alert_id = (SELECT m.survivor_id FROM alert_merge m WHERE m.duplicate_id = alert_events.alert_id)
WHERE alert_id IN (SELECT duplicate_id FROM alert_merge);

INSERT INTO alert_events (id, alert_id, at, kind, actor_id, detail, check_in_id)
SELECT 'merged-' || m.duplicate_id, m.survivor_id, CAST(timezone('UTC', now()) AS TIMESTAMP), 'merged', NULL,
       'An unresolved alert of the same patient and rule (' || m.duplicate_id || ') was merged into this one; its signals are in this history.',
       NULL
FROM alert_merge m;
DELETE FROM alerts WHERE id IN (SELECT duplicate_id FROM alert_merge);
DROP TABLE alert_merge;

CREATE UNIQUE INDEX alerts_one_unresolved_idx ON alerts (patient_id, rule) WHERE status <> 'resolved';
