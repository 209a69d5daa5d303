-- What the server sends for one daily mood check-in, statement for statement (the server's
-- bound values become pgbench variables), replayed by `checkin-load` to measure the API against
-- its own SQL. tests/api/statements.rs fails when the server's statements change and this does
-- not. Variables set with -D by the load tool: patients, clinic, instrument, answers, at, since,
-- recent, soon, hash, answers_hash, timing, complete, completed, scheduled, sent, reminded,
-- expired, one, mood_rows. The
-- server binds NULL where this script writes it (pgbench variables cannot be NULL). Patients
-- 1..:patients are replay copies of an enrolled patient, each with a session of the same id, so
-- that every statement finds what it finds for a real patient.
\set p random(1, :patients)
\set id random(1, 9000000000000000000)
\set mood random(0, 10)
-- Answers of their own each time, as the load's check-ins have: the same answers within minutes
-- are one check-in, and the insert would store nothing.
\set answers_hash random(1, 9000000000000000000)
BEGIN;
SELECT "accounts"."role", "accounts"."clinic_id", "accounts"."disabled_at", "refresh_families"."revoked_at", "accounts"."timezone", "clinics"."alert_thresholds" FROM ("refresh_families" INNER JOIN ("accounts" LEFT OUTER JOIN "clinics" ON ("accounts"."clinic_id" = "clinics"."id")) ON ("refresh_families"."account_id" = "accounts"."id")) WHERE (("refresh_families"."id" = :p) AND ("refresh_families"."account_id" = :p)) LIMIT :one;
INSERT INTO "check_ins" ("id", "patient_id", "clinic_id", "instrument", "instrument_version", "answers", "total", "severity", "item9", "completed_at", "received_at", "prompt_id", "content_hash", "device_completed_at", "timing", "mood", "status", "problems", "answers_hash", "amended_at", "earlier_versions") SELECT :id, :p, :clinic, :instrument, :one, :answers, NULL, NULL, NULL, :at, :at, NULL, :hash, NULL, :timing, :mood, :complete, NULL, :answers_hash, NULL, NULL WHERE NOT (EXISTS (SELECT "check_ins"."id" FROM "check_ins" WHERE (((("check_ins"."patient_id" = :p) AND ("check_ins"."answers_hash" = :answers_hash)) AND ("check_ins"."received_at" >= :recent)) AND ((("check_ins"."device_completed_at" IS NULL) AND ("check_ins"."completed_at" BETWEEN :recent AND :soon)) OR ("check_ins"."device_completed_at" BETWEEN :recent AND :soon))))) ON CONFLICT DO NOTHING;
UPDATE "prompts" SET "status" = :completed, "closed_at" = :at, "check_in_id" = :id, "updated_at" = :at WHERE "prompts"."id" = (SELECT "prompts"."id" FROM "prompts" WHERE "prompts"."patient_id" = :p AND "prompts"."instrument" = :instrument AND "prompts"."status" IN (:scheduled, :sent, :reminded, :expired) AND "prompts"."expires_at" > :at AND ("prompts"."id" = NULL OR "prompts"."due_at" <= :at) ORDER BY "prompts"."id" = NULL DESC, "prompts"."due_at", "prompts"."id" LIMIT 1) RETURNING "prompts"."id";
SELECT "check_ins"."completed_at", "check_ins"."mood" FROM "check_ins" WHERE ((((("check_ins"."patient_id" = :p) AND ("check_ins"."instrument" = :instrument)) AND ("check_ins"."completed_at" <= :at)) AND ("check_ins"."completed_at" >= :since)) AND ("check_ins"."id" != :id)) ORDER BY "check_ins"."completed_at" DESC LIMIT :mood_rows;
COMMIT;
