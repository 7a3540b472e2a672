import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { type ErrorCode, type FieldProblem, MailroomError } from "../kernel/errors.js";
import type { StorageHealth } from "../storage/health.js";

interface AjvIssue {
  keyword: string;
  instancePath: string;
  message?: string;
  params: Record<string, unknown>;
}

function fieldPath(part: string | undefined, issue: AjvIssue): string {
  const path = issue.instancePath.replace(/^\//, "").replaceAll("/", ".");
  const base = part === "body" ? "" : `${part ?? "request"}.`;
  if (issue.keyword === "additionalProperties") {
    return `${base}${path ? `${path}.` : ""}${String(issue.params.additionalProperty)}`;
  }
  if (issue.keyword === "required") {
    return `${base}${path ? `${path}.` : ""}${String(issue.params.missingProperty)}`;
  }
  return `${base}${path}` || part || "body";
}

function describe(issue: AjvIssue): string {
  switch (issue.keyword) {
    case "additionalProperties":
      return "is not a field this route accepts; remove it";
    case "required":
      return "is required";
    case "type":
      return `must be of type ${String(issue.params.type)}`;
    case "maxLength":
    case "minLength":
    case "maxItems":
    case "minItems":
    case "minimum":
    case "maximum":
    case "pattern":
    case "format":
    case "enum":
      return issue.message ?? "has an invalid value";
    default:
      return issue.message ?? "is invalid";
  }
}

/** Turns Fastify's and ajv's errors into catalogue errors, so every reply has a stable code. */
export function toMailroomError(error: FastifyError & { validation?: AjvIssue[]; validationContext?: string }): MailroomError {
  if (error instanceof MailroomError) return error;
  if (error.validation) {
    const problems: FieldProblem[] = error.validation.map((issue) => ({
      field: fieldPath(error.validationContext, issue),
      message: describe(issue),
    }));
    // With allErrors, an unknown field may come after other problems: it decides the code,
    // so the message names it too.
    const unknown = error.validation.findIndex((i) => i.keyword === "additionalProperties");
    const first = problems[unknown === -1 ? 0 : unknown];
    const more = problems.length > 1 ? ` (and ${problems.length - 1} more in details)` : "";
    return new MailroomError(
      unknown === -1 ? "validation_failed" : "unknown_field",
      `${first.field}: ${first.message}${more}`,
      problems,
    );
  }
  switch (error.code) {
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return new MailroomError(
        "body_too_large",
        "The request body is larger than this route accepts (100 KB; 10 MB for messages; 256 KB for provider events).",
      );
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return new MailroomError("unsupported_media_type", "Send the body as JSON with 'Content-Type: application/json'.");
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return new MailroomError("invalid_json", "The body is empty; send a JSON object, or no Content-Type header.");
    case "FST_ERR_CTP_INVALID_JSON_BODY":
      return new MailroomError("invalid_json", "The body is not valid JSON.");
  }
  if (error.statusCode === 400 && error instanceof SyntaxError) {
    return new MailroomError("invalid_json", `The body is not valid JSON: ${error.message}`);
  }
  if (error.statusCode === 429) return new MailroomError("rate_limited", "Too many attempts; wait a minute and try again.");
  if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) {
    return new MailroomError("validation_failed", error.message);
  }
  return new MailroomError("internal_error");
}

// Seconds a client should wait before retrying, per storage failure.
const STORAGE_RETRY_AFTER: Partial<Record<ErrorCode, string>> = {
  storage_busy: "1",
  storage_unavailable: "5",
  storage_full: "60",
};

/** Answers every error with its catalogue code; database failures are classified by `health`. */
export function errorHandlerFor(health: StorageHealth) {
  return (error: FastifyError, request: FastifyRequest, reply: FastifyReply): void => {
    const storage = error instanceof MailroomError ? null : health.failed(error);
    const mapped = storage ?? toMailroomError(error);
    // An outage is logged once by `health` when it starts, not once per request.
    const outage = mapped.code === "storage_unavailable" || mapped.code === "storage_full";
    if (mapped.status >= 500 && !outage) request.log.error({ err: error }, "request failed");
    if (mapped.code === "rate_limited" && !reply.hasHeader("retry-after")) reply.header("retry-after", "60");
    const retryAfter = STORAGE_RETRY_AFTER[mapped.code];
    if (retryAfter) reply.header("retry-after", retryAfter);
    void reply.status(mapped.status).send(mapped.toBody());
  };
}
