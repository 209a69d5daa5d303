// What a client checks on every answer: the status it expects, and a body of the documented
// shape. openapi-fetch types `data` from the document's success responses and `error` from its
// error responses; the status tells which one arrived.
import type { components } from "./schema.js";

type ErrorBody = components["schemas"]["ErrorBody"];

/** An openapi-fetch result: a documented success body or a documented error body. */
interface Result<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

/** The body of `result` if its status is one of `statuses`; otherwise throws, naming the error. */
export function expectStatus<T>(what: string, result: Result<T>, ...statuses: number[]): T {
  const { data, error, response } = result;
  if (statuses.includes(response.status) && data !== undefined) {
    return data;
  }
  const detail = isErrorBody(error) ? ` ${error.error.code}: ${error.error.message}` : "";
  const expected = statuses.join(" or ");
  throw new Error(`${what}: expected HTTP ${expected}, got ${response.status}${detail}`);
}

/** Throws `message` unless `condition` holds. */
export function check(condition: boolean, message: string): asserts condition {
  if (!condition) {
    throw new Error(message);
  }
}

function isErrorBody(value: unknown): value is ErrorBody {
  if (typeof value !== "object" || value === null || !("error" in value)) {
    return false;
  }
  const inner: unknown = value.error;
  return typeof inner === "object" && inner !== null && "code" in inner && "message" in inner;
}
