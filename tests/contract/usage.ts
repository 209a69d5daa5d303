// Type-checked by tests/contract/run.sh against the client openapi-typescript generates from
// openapi/openapi.json: what a third-party app writes must keep compiling.
import type { components, paths } from "./companion";

type Schemas = components["schemas"];

type LoginBody = paths["/v1/auth/login"]["post"]["requestBody"]["content"]["application/json"];
type Tokens = paths["/v1/auth/login"]["post"]["responses"][200]["content"]["application/json"];

export const login: LoginBody = { email: "ann@example.org", password: "a long passphrase" };

export function authorization(tokens: Tokens): string {
  return `${tokens.token_type} ${tokens.access_token}`;
}

export const checkIn: Schemas["SubmitCheckIn"] = {
  id: "0190c1c2-4b5e-7c3d-9a1b-2c3d4e5f6a7b",
  instrument: "daily_mood",
  answers: { mood: 6, sleep_hours: 7.5 },
  completed_at: "2026-12-04T09:00:00Z",
};

// Tagged unions narrow on their discriminator.
export function describe(anchor: Schemas["Anchor"]): string {
  switch (anchor.kind) {
    case "daily":
      return "every day";
    case "after_session":
      return `days ${anchor.days.join(", ")} after each session`;
    case "before_session":
      return `${anchor.hours_before} hours before each session`;
    case "weekly":
      return `every ${anchor.weekday}`;
  }
}

export function firstFieldProblem(body: Schemas["ErrorBody"]): string | undefined {
  return Object.values(body.error.fields ?? {})[0];
}

type AlertQuery = NonNullable<paths["/v1/alerts"]["get"]["parameters"]["query"]>;
export const urgentForOnePatient: AlertQuery = {
  severity: "urgent",
  rule: "safety_item9",
  status: "open",
  patient_id: "0190c1c2-4b5e-7c3d-9a1b-2c3d4e5f6a7b",
  limit: 20,
};

export function nextPage(page: Schemas["Paginated_Alert"]): string | null | undefined {
  return page.next_cursor;
}

export const profileChange: Schemas["UpdatePatient"] = {
  external_id: "MRN-004217",
  timezone: "America/Chicago",
  status: "active",
};

// A time zone is a string the server checks against GET /v1/time-zones (an enum of every zone
// made generated clients collide); the document's pattern still says what a name looks like.
export const zone: Schemas["TimeZone"] = "America/Chicago";

// @ts-expect-error: severities are urgent, high, medium and low
export const dire: AlertQuery = { severity: "dire" };

type PasswordChangeBody =
  paths["/v1/me/password"]["post"]["requestBody"]["content"]["application/json"];
export const passwordChange: PasswordChangeBody = {
  current_password: "a long passphrase",
  new_password: "a longer new passphrase",
};

export const reset: Schemas["PasswordReset"] = {
  email: "ann@example.org",
  code: "7KQ2M-XC9TD",
  new_password: "a longer new passphrase",
};

// A system client is listed with whether it is enabled and when it was last used.
export function idleSince(client: Schemas["SystemClient"]): string | null | undefined {
  return client.active ? client.last_used_at : client.disabled_at;
}

export const newKeys: Schemas["SystemClientKeys"] = {
  jwks: { keys: [{ kty: "EC", crv: "P-384", x: "…", y: "…", kid: "ec-2" }] },
};

// A browser registers its Web Push subscription with the server's key.
type WebPushKey = paths["/v1/push/web-push-key"]["get"]["responses"][200]["content"]["application/json"];
type RegisterDeviceBody = paths["/v1/devices"]["post"]["requestBody"]["content"]["application/json"];

export function applicationServerKey(key: WebPushKey): string {
  return key.public_key;
}

export function webRegistration(subscription: {
  endpoint: string;
  keys: { p256dh: string; auth: string };
}): RegisterDeviceBody {
  return { platform: "web", endpoint: subscription.endpoint, keys: subscription.keys };
}

export const phoneRegistration: RegisterDeviceBody = { platform: "ios", token: "apns-token" };
