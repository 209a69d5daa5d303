// A minimal third-party client of the Companion API: a patient joins their clinic with an
// invitation code, consents, registers a phone, sends a daily mood and a PHQ-9 whose item 9 is
// positive; then a clinician finds that patient's urgent alert in the clinic's inbox.
//
// Types: `openapi-typescript ../../openapi/openapi.json -o src/schema.d.ts` (default settings).
// Calls: openapi-fetch. Usage (see examples/README.md):
//   CLINICIAN_EMAIL=... CLINICIAN_PASSWORD=... node dist/main.js BASE_URL INVITATION
// INVITATION is the code (e.g. 7KQ2M-XC9TD) or the join link that contains it.
import { randomUUID } from "node:crypto";
import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";
import { check, expectStatus } from "./check.js";

type Schemas = components["schemas"];
type Answers = Schemas["SubmitCheckIn"]["answers"];

/** PHQ-9 item 9 (thoughts of being better off dead or of self-harm), by its LOINC code. */
const PHQ9_ITEM9_LOINC = "44260-8";

function say(line: string): void {
  console.log(line);
}

/** A client that sends the access token of `tokens` with every request. */
function signedIn(baseUrl: string, tokens: Schemas["TokenResponse"]) {
  check(tokens.token_type === "Bearer", `unexpected token type ${tokens.token_type}`);
  return createClient<paths>({
    baseUrl,
    headers: { Authorization: `Bearer ${tokens.access_token}` },
  });
}

async function main(): Promise<void> {
  const [baseUrl, invitation] = process.argv.slice(2);
  const clinicianEmail = process.env.CLINICIAN_EMAIL;
  const clinicianPassword = process.env.CLINICIAN_PASSWORD;
  if (!baseUrl || !invitation || !clinicianEmail || !clinicianPassword) {
    throw new Error(
      "usage: CLINICIAN_EMAIL=... CLINICIAN_PASSWORD=... node dist/main.js BASE_URL INVITATION",
    );
  }
  // A join link ends with the code: .../app/#/join/7KQ2M-XC9TD
  const code = invitation.split("/join/").pop() ?? invitation;
  const anonymous = createClient<paths>({ baseUrl });

  // 1. Enrol: accepting the invitation creates the patient's account; then sign in with it.
  const email = `example-${randomUUID().slice(0, 8)}@example.org`;
  const password = `example ${randomUUID()}`;
  expectStatus("accept the invitation", await anonymous.POST("/v1/invitations/accept", {
    body: { code, email, password, display_name: "Example Patient" },
  }), 201);
  const tokens = expectStatus("sign in", await anonymous.POST("/v1/auth/login", {
    body: { email, password },
  }), 200);
  const patient = signedIn(baseUrl, tokens);
  const me = expectStatus("who am I", await patient.GET("/v1/me"), 200);
  check(me.role === "patient", `signed in as a ${me.role}, not a patient`);
  say(`enrolled and signed in as a patient of clinic ${me.clinic_id ?? "(none)"}`);

  // 2. Consent: accept the clinic's document in force, if there is one and it is not accepted.
  const consent = expectStatus("read my consent", await patient.GET("/v1/me/consent"), 200);
  if (consent.current && !consent.accepted) {
    const accepted = expectStatus("accept consent", await patient.POST("/v1/me/consent", {
      body: { action: "accept", document_id: consent.current.id },
    }), 200);
    check(accepted.accepted && accepted.standing === "accepted", "consent not recorded");
    say(`consent: accepted "${consent.current.title}" (version ${consent.current.version})`);
  } else {
    say(`consent: nothing to record (${consent.standing})`);
  }

  // 3. Register the phone for push notifications (idempotent by token: 201 new, 200 known).
  const device = expectStatus("register a device", await patient.POST("/v1/devices", {
    body: {
      platform: "android",
      token: `example-fcm-${randomUUID()}`,
      app_version: "1.0.0",
      locale: "en-US",
    },
  }), 201, 200);
  check(device.active && device.platform === "android", "device not registered as active");
  say(`device: ${device.platform} device ${device.id} registered`);

  // 4. A daily mood check-in; the id is the app's own, so a resend after a lost answer is safe.
  const moodId = randomUUID();
  const mood: Answers = { mood: 6, sleep_hours: 7.5 };
  const stored = expectStatus("submit a daily mood", await patient.POST("/v1/check-ins", {
    body: {
      id: moodId,
      instrument: "daily_mood",
      answers: mood,
      completed_at: new Date().toISOString(),
    },
  }), 201);
  check(stored.id === moodId && stored.status === "complete", "daily mood not stored as sent");
  const readBack = expectStatus("read the daily mood back", await patient.GET(
    "/v1/me/check-ins/{check_in_id}", { params: { path: { check_in_id: moodId } } },
  ), 200);
  check(readBack.instrument === "daily_mood", "read back another instrument");
  check(readBack.answers.mood === mood.mood && readBack.answers.sleep_hours === mood.sleep_hours,
    "the answers read back differ from those sent");
  check(readBack.safety == null, "a daily mood of 6 carries no safety notice");
  say(`daily mood: stored (${stored.timing}) and read back with the same answers`);

  // 5. A PHQ-9, its items taken from the catalogue the app renders; item 9 answered "several days".
  const catalogue = expectStatus("list instruments", await patient.GET("/v1/instruments"), 200);
  const phq9 = catalogue.items.find((instrument) => instrument.key === "phq9");
  check(phq9 !== undefined, "the catalogue has no PHQ-9");
  const item9 = phq9.items.find((item) => item.loinc === PHQ9_ITEM9_LOINC);
  check(item9 !== undefined, "the PHQ-9 has no item 9");
  const answers: Answers = {};
  for (const item of phq9.items) {
    if (item.required && item.answer.type === "choice") {
      const severalDays = item.answer.options.find((option) => option.value === 1);
      check(severalDays !== undefined, `item ${item.id} has no answer worth 1`);
      answers[item.id] = severalDays.value;
    }
  }
  check(answers[item9.id] === 1, "item 9 is not answered positively");
  const phq9Id = randomUUID();
  const screened = expectStatus("submit a PHQ-9", await patient.POST("/v1/check-ins", {
    body: {
      id: phq9Id,
      instrument: "phq9",
      instrument_version: phq9.version,
      answers,
      completed_at: new Date().toISOString(),
    },
  }), 201);
  check(screened.safety_signal, "item 9 answered 1 raised no safety signal");
  const safety = screened.safety;
  check(safety != null, "a safety signal came without a safety notice");
  const careTeams: Schemas["CareTeam"][] = ["reached", "trying", "unreachable"];
  check(careTeams.includes(safety.care_team), `unknown care_team ${safety.care_team}`);
  check(safety.message.length > 0, "the safety notice has no message");
  const resources = safety.crisis_resources;
  check(resources.lines.length > 0, "no crisis lines");
  say(`phq9: stored with a safety signal; care team: ${safety.care_team}`);
  say(`  message: ${safety.message}`);
  const country = resources.country ?? "no country";
  say(`  crisis resources (${country}, ${resources.source}): ${resources.message}`);
  for (const line of resources.lines) {
    const ways = [
      line.call ? `call ${line.call}` : null,
      line.text ? `text ${line.text}` : null,
      line.url ?? null,
    ].filter((way) => way !== null);
    say(`    ${line.name}: ${ways.join(", ")}`);
  }
  const emergency = resources.emergency_numbers.join(" or ") || "your local emergency number";
  say(`    emergency: ${emergency}`);
  const later = expectStatus("read the PHQ-9 back", await patient.GET(
    "/v1/me/check-ins/{check_in_id}", { params: { path: { check_in_id: phq9Id } } },
  ), 200);
  check(later.safety != null, "the PHQ-9 read back lost its safety notice");
  say(`  read back: care team now ${later.safety.care_team}`);

  // 6. The care team: a clinician of the clinic signs in and finds the urgent alert.
  const staffTokens = expectStatus("sign in as the clinician", await anonymous.POST(
    "/v1/auth/login", { body: { email: clinicianEmail, password: clinicianPassword } },
  ), 200);
  const clinician = signedIn(baseUrl, staffTokens);
  const inbox = expectStatus("read the alert inbox", await clinician.GET("/v1/alerts", {
    params: { query: { patient_id: me.id, rule: "safety_item9", status: "open" } },
  }), 200);
  const alert = inbox.items.find((item) => item.check_in_id === phq9Id);
  check(alert !== undefined, "no open item-9 alert names the PHQ-9 just sent");
  check(alert.severity === "urgent" && alert.patient_id === me.id,
    "the alert is not an urgent one for this patient");
  say(`clinician: alert ${alert.id} is ${alert.severity} and ${alert.status}; `
    + `acknowledge by ${alert.ack_deadline} (care team: ${alert.care_team})`);
  say("done");
}

main().catch((error: unknown) => {
  console.error(`failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
