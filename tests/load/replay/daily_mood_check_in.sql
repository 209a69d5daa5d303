-- What the server sends for one daily mood check-in, statement for statement (the server's
-- bound values become pgbench variables), replayed by `checkin-load` to measure the API against
-- its own SQL. tests/api/statements.rs fails when the server's statements change and this does
-- not. Variables set with -D by the load tool: patients, clinic, instrument, answers, at, since,
-- recent, hash, answers_hash, timing, complete, completed, answerable, one, twenty, mood_rows. Patients 1..:patients are replay copies of
-- an enrolled patient, each with a session of the same id, so that every statement finds what it
-- finds for a real patient.
\set p random(1, :patients)
\set id random(1, 9000000000000000000)
\set mood random(0, 10)
BEGIN;
SELECT "accounts"."role", "accounts"."clinic_id", "accounts"."disabled_at", "refresh_families"."revoked_at", "accounts"."timezone", "clinics"."alert_thresholds" FROM ("refresh_families" INNER JOIN ("accounts" LEFT OUTER JOIN "clinics" ON ("accounts"."clinic_id" = "clinics"."id")) ON ("refresh_families"."account_id" = "accounts"."id")) WHERE (("refresh_families"."id" = :p) AND ("refresh_families"."account_id" = :p)) LIMIT :one;
SELECT "check_ins"."id", "check_ins"."patient_id", "check_ins"."clinic_id", "check_ins"."instrument", "check_ins"."instrument_version", "check_ins"."answers", "check_ins"."total", "check_ins"."severity", "check_ins"."item9", "check_ins"."completed_at", "check_ins"."received_at", "check_ins"."prompt_id", "check_ins"."content_hash", "check_ins"."device_completed_at", "check_ins"."timing", "check_ins"."mood", "check_ins"."status", "check_ins"."problems", "check_ins"."answers_hash", "check_ins"."amended_at", "check_ins"."earlier_versions", "check_ins"."safety_alert_id" FROM "check_ins" WHERE ((("check_ins"."patient_id" = :p) AND ("check_ins"."answers_hash" = :answers_hash)) AND ("check_ins"."received_at" >= :recent)) ORDER BY "check_ins"."received_at" ASC, "check_ins"."id" ASC LIMIT :twenty;
INSERT INTO "check_ins" ("id", "patient_id", "clinic_id", "instrument", "instrument_version", "answers", "total", "severity", "item9", "completed_at", "received_at", "prompt_id", "content_hash", "device_completed_at", "timing", "mood", "status", "problems", "answers_hash", "amended_at", "earlier_versions", "safety_alert_id") VALUES (:id, :p, :clinic, :instrument, :one, :answers, DEFAULT, DEFAULT, DEFAULT, :at, :at, DEFAULT, :hash, DEFAULT, :timing, :mood, :complete, DEFAULT, :hash, DEFAULT, DEFAULT, DEFAULT) ON CONFLICT DO NOTHING;
UPDATE "prompts" SET "status" = :completed, "closed_at" = :at, "check_in_id" = :id, "updated_at" = :at WHERE ("prompts"."id" = (SELECT "prompts"."id" FROM "prompts" WHERE ((((("prompts"."patient_id" = :p) AND ("prompts"."instrument" = :instrument)) AND ("prompts"."status" = ANY(:answerable))) AND ("prompts"."expires_at" > :at)) AND ("prompts"."due_at" <= :at)) ORDER BY "prompts"."due_at", "prompts"."id" LIMIT :one)) RETURNING "prompts"."id";
SELECT "check_ins"."completed_at", "check_ins"."mood" FROM "check_ins" WHERE ((((("check_ins"."patient_id" = :p) AND ("check_ins"."instrument" = :instrument)) AND ("check_ins"."completed_at" <= :at)) AND ("check_ins"."completed_at" >= :since)) AND ("check_ins"."id" != :id)) ORDER BY "check_ins"."completed_at" DESC LIMIT :mood_rows;
COMMIT;
