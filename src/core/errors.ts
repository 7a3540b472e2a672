/**
 * The one catalogue of error codes. Every error the API answers has a code from here,
 * the HTTP status given here, and a message that names the field or the fix.
 * docs/errors.md lists the same codes; test/errors-doc.test.ts keeps the two in sync.
 */
export const errorCatalogue = {
  // Request shape
  invalid_json: { status: 400, summary: "The request body is not valid JSON." },
  unsupported_media_type: { status: 415, summary: "The request body must be JSON (Content-Type: application/json)." },
  body_too_large: { status: 413, summary: "The request body is larger than the limit for this route." },
  validation_failed: { status: 400, summary: "A field is missing, has the wrong type or an invalid value; details name each field." },
  unknown_field: { status: 400, summary: "The request has a field this route does not accept; details name it." },
  control_characters: { status: 400, summary: "A name or header value contains control characters such as CR or LF." },
  // Authentication and permissions
  unauthenticated: { status: 401, summary: "Sign in, or send an API token as 'Authorization: Bearer <token>'." },
  invalid_credentials: { status: 401, summary: "The email or password is wrong, or the account is disabled." },
  invalid_token: { status: 401, summary: "The API token is unknown, revoked or expired." },
  csrf_failed: { status: 403, summary: "A cookie-authenticated write needs the X-CSRF-Token header from the login reply." },
  forbidden: { status: 403, summary: "You lack the permission this action needs; details name it." },
  server_not_allowed: { status: 403, summary: "This API token is limited to other email servers." },
  rate_limited: { status: 429, summary: "Too many requests; wait the number of seconds in Retry-After." },
  // Email servers
  email_server_not_found: { status: 404, summary: "No email server has that id or name." },
  name_taken: { status: 409, summary: "Another email server already has that name; choose another." },
  unknown_driver: { status: 400, summary: "The driver is not one Mailroom knows; details list the valid ones." },
  unknown_setting: { status: 400, summary: "The driver has no setting with that key; details list its settings." },
  invalid_setting: { status: 400, summary: "A setting has an invalid value; details name the setting and what it accepts." },
  read_only_setting: { status: 400, summary: "That setting is derived by Mailroom and cannot be edited or cleared." },
  default_server_delete: { status: 409, summary: "The default email server cannot be deleted; make another server the default first." },
  // Users, groups, tokens
  user_not_found: { status: 404, summary: "No user has that id." },
  email_taken: { status: 409, summary: "Another user already has that email address." },
  group_not_found: { status: 404, summary: "No group has that id." },
  group_name_taken: { status: 409, summary: "Another group already has that name." },
  unknown_permission: { status: 400, summary: "The permission is not one Mailroom knows; details list the valid ones." },
  token_not_found: { status: 404, summary: "No API token has that id." },
  weak_password: { status: 400, summary: "Passwords need at least 12 characters." },
  last_super_admin: { status: 409, summary: "This would leave no active super admin; make another user super admin first." },
  not_found: { status: 404, summary: "No such route or resource." },
  // Secrets and storage
  secret_key_missing: { status: 500, summary: "A stored secret was encrypted with a key Mailroom no longer has; restore the key or set the secret again." },
  storage_busy: { status: 503, summary: "The database is busy or unavailable for a moment; retry the request." },
  internal_error: { status: 500, summary: "Something failed inside Mailroom; the log has the details." },
} as const satisfies Record<string, { status: number; summary: string }>;

export type ErrorCode = keyof typeof errorCatalogue;

export interface ErrorBody {
  code: ErrorCode;
  message: string;
  details?: unknown;
}

export class MailroomError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details?: unknown;

  constructor(code: ErrorCode, message?: string, details?: unknown) {
    super(message ?? errorCatalogue[code].summary);
    this.name = "MailroomError";
    this.code = code;
    this.status = errorCatalogue[code].status;
    this.details = details;
  }

  toBody(): ErrorBody {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }
}

/** One invalid field, as listed in `details` of a validation error. */
export interface FieldProblem {
  field: string;
  message: string;
}

export function fieldError(code: ErrorCode, problems: FieldProblem[]): MailroomError {
  const first = problems[0];
  const more = problems.length > 1 ? ` (and ${problems.length - 1} more in details)` : "";
  return new MailroomError(code, `${first.field}: ${first.message}${more}`, problems);
}
