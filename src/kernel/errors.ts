/** What a code means: the HTTP status it is answered with, and the fix shown to people. */
export interface ErrorEntry {
  status: number;
  summary: string;
}

/**
 * The catalogue of the codes every layer shares. Every error the API answers has a code
 * from here or from a driver's own declaration (`Driver.errors`, in the driver's folder),
 * the HTTP status given there, and a message that names the field or the fix.
 * docs/errors.md lists these codes and each driver's README.md its own;
 * test/errors-doc.test.ts keeps them in sync.
 */
export const errorCatalogue = {
  // Request shape
  invalid_json: { status: 400, summary: "The request body is not valid JSON." },
  unsupported_media_type: { status: 415, summary: "The request body must be JSON (Content-Type: application/json)." },
  body_too_large: { status: 413, summary: "The request body is larger than the limit for this route." },
  validation_failed: {
    status: 400,
    summary: "A field is missing, has the wrong type or an invalid value; details name each field.",
  },
  unknown_field: { status: 400, summary: "The request has a field this route does not accept; details name it." },
  control_characters: {
    status: 400,
    summary:
      "A value contains a control character (NUL, CR, LF, TAB, ESC, DEL…); details name the field. Remove it: only a message's text, html and attachment content may hold line breaks and tabs.",
  },
  // Authentication and permissions
  unauthenticated: { status: 401, summary: "Sign in, or send an API token as 'Authorization: Bearer <token>'." },
  invalid_credentials: { status: 401, summary: "The email or password is wrong, or the account is disabled." },
  invalid_token: { status: 401, summary: "The API token is unknown, revoked or expired, or its owner is disabled or deleted." },
  csrf_failed: { status: 403, summary: "A cookie-authenticated write needs the X-CSRF-Token header from the login reply." },
  forbidden: { status: 403, summary: "You lack the permission this action needs; details name it." },
  server_not_allowed: { status: 403, summary: "This API token is limited to other email servers." },
  rate_limited: { status: 429, summary: "Too many requests; wait the number of seconds in Retry-After." },
  password_change_required: {
    status: 403,
    summary: "Your password was set by someone else: choose your own with POST /api/auth/password, then sign in again.",
  },
  too_many_attempts: {
    status: 429,
    summary: "Too many wrong passwords for this account or from this address; wait the seconds in Retry-After.",
  },
  too_many_tests: {
    status: 429,
    summary: "At most 3 server tests run at once per user or token: wait for one to finish.",
  },
  // Email servers
  email_server_not_found: { status: 404, summary: "No email server has that id or name." },
  name_taken: { status: 409, summary: "Another email server already has that name; choose another." },
  unknown_driver: { status: 400, summary: "The driver is not one Mailroom knows; details list the valid ones." },
  unknown_setting: { status: 400, summary: "The driver has no setting with that key; details list its settings." },
  invalid_setting: { status: 400, summary: "A setting has an invalid value; details name the setting and what it accepts." },
  read_only_setting: { status: 400, summary: "That setting is derived by Mailroom and cannot be edited or cleared." },
  default_server_delete: {
    status: 409,
    summary: "The default email server cannot be deleted; make another server the default first.",
  },
  secret_destination_changed: {
    status: 409,
    summary:
      "A setting that says where the server's secrets go changed: enter the secrets the message names again, in the same request.",
  },
  endpoint_not_allowed: {
    status: 400,
    summary:
      "Mailroom may not connect there: use the provider's own address, or ask the operator to list the endpoint in MAILROOM_ALLOWED_ENDPOINTS (link-local and cloud metadata addresses need that too).",
  },
  // Users, groups, tokens
  user_not_found: { status: 404, summary: "No user has that id." },
  email_taken: { status: 409, summary: "Another user already has that email address." },
  group_not_found: { status: 404, summary: "No group has that id." },
  group_name_taken: { status: 409, summary: "Another group already has that name." },
  unknown_permission: { status: 400, summary: "The permission is not one Mailroom knows; details list the valid ones." },
  token_not_found: { status: 404, summary: "No API token has that id." },
  user_not_manageable: {
    status: 403,
    summary: "You may change only users whose every permission you hold, and never a super admin; details name what you lack.",
  },
  group_not_manageable: {
    status: 403,
    summary: "You may edit or delete only groups whose every permission you hold; details name what you lack.",
  },
  token_not_manageable: {
    status: 403,
    summary: "You may revoke only tokens of users you may change (your own included); the message says why not.",
  },
  weak_password: { status: 400, summary: "Passwords need at least 12 characters." },
  last_super_admin: { status: 409, summary: "This would leave no active super admin; make another user super admin first." },
  not_found: { status: 404, summary: "No such route or resource." },
  // Messages
  message_not_found: { status: 404, summary: "No message has that id." },
  invalid_address: {
    status: 400,
    summary: 'An address is not valid RFC 5322 syntax, e.g. "Name <name@example.com>"; details name the field.',
  },
  header_injection: { status: 400, summary: "A header value, subject or name contains CR or LF; remove the line break." },
  too_many_recipients: { status: 400, summary: "A message may have at most 500 recipients (to, cc and bcc together)." },
  empty_message: { status: 400, summary: "Give the message a subject or a body (text or html)." },
  from_not_allowed: {
    status: 400,
    summary: "This server may not send as that from address; add it to the server's allowed from addresses.",
  },
  invalid_attachment: { status: 400, summary: "An attachment needs a filename and base64 content; details name it." },
  message_not_retryable: {
    status: 409,
    summary:
      "Only failed or held messages can be retried, and captured ones released, only while they have their body (retention removes it).",
  },
  message_erased: {
    status: 410,
    summary:
      "The message was erased on request (DELETE /api/recipients/:address/data) before it was sent: it will not be sent, and cannot be retried.",
  },
  server_not_ready: { status: 409, summary: "The email server cannot send yet; its status says what is missing." },
  route_not_found: { status: 404, summary: "No route has that id or name." },
  daily_limit_reached: {
    status: 429,
    summary:
      "The server sent its messages-per-day limit: its route's next server takes the message, or it waits until the 24-hour window has room.",
  },
  // Provider events (bounces, deliveries, complaints) and the suppression list
  recipient_suppressed: {
    status: 400,
    summary:
      "A recipient is on the suppression list (a hard bounce, a complaint, or added by hand): remove it from the message, or remove its entry under Suppressions if the address can receive mail again.",
  },
  suppression_not_found: { status: 404, summary: "No suppression list entry has that id." },
  suppression_exists: {
    status: 409,
    summary: "The address is already on the suppression list for that scope; details give the entry's id.",
  },
  provider_events_not_set_up: {
    status: 404,
    summary:
      "This server has no such source of provider events: set it up under the server's 'Bounces and deliveries' and give the provider the URL shown there.",
  },
  provider_event_unauthorized: {
    status: 401,
    summary:
      "The provider event's signature or credentials did not verify: paste the Mailgun webhook signing key again, or set the provider's webhook URL (with the credentials Mailroom showed) again.",
  },
  provider_event_replayed: {
    status: 401,
    summary:
      "A signed event more than 15 minutes old, or whose token was used already, is refused as a replay: check the clock of this machine if Mailgun's own events are refused.",
  },
  provider_event_invalid: {
    status: 400,
    summary:
      "The body is not the provider's documented webhook payload (Mailgun's signature and event-data, Postmark's RecordType, an SNS message): check the webhook's URL and type.",
  },
  sns_certificate_refused: {
    status: 401,
    summary:
      "The SNS message names a signing certificate or subscribe URL outside https://sns.<region>.amazonaws.com: refused without fetching it (the operator may allow another endpoint in MAILROOM_ALLOWED_ENDPOINTS).",
  },
  sns_certificate_unavailable: {
    status: 502,
    summary: "Mailroom could not fetch SNS's signing certificate; SNS sends the message again later.",
  },
  sns_confirmation_failed: {
    status: 502,
    summary:
      "Confirming the SNS subscription (its SubscribeURL) failed; SNS can send the confirmation again (Request confirmation in the SNS console).",
  },
  // Delivery (from tests and attempts): the summary is the hint shown to the admin
  dns_not_found: { status: 502, summary: "The host name does not resolve: check the spelling of the host." },
  connection_refused: {
    status: 502,
    summary: "Nothing accepts connections on that host and port: check the port (587 STARTTLS, 465 TLS, 25) and any firewall.",
  },
  connection_timeout: {
    status: 504,
    summary: "The server did not answer in time: check host, port and firewall, or raise the timeout.",
  },
  connection_dropped: { status: 502, summary: "The server closed the connection unexpectedly; it will be retried." },
  tls_wrong_port: { status: 502, summary: "The security mode does not match the port: use STARTTLS on 587 or 25, TLS on 465." },
  tls_certificate_invalid: {
    status: 502,
    summary:
      "Use the host name the certificate is issued for; for a self-signed or private-CA certificate, turn off 'Verify certificate' only if you trust this server and the network to it.",
  },
  smtp_starttls_required: {
    status: 502,
    summary: "Set Security to STARTTLS (usually port 587): this server takes a login or mail only on an encrypted connection.",
  },
  starttls_not_offered: {
    status: 502,
    summary:
      "Choose None or TLS: set Security to TLS if the server speaks TLS from the first byte (usually port 465), or to None only on a network you trust.",
  },
  port_expects_tls: {
    status: 502,
    summary: "The server speaks TLS from the first byte: set Security to TLS (usually port 465).",
  },
  port_expects_starttls: {
    status: 502,
    summary: "The server speaks plain SMTP first and encrypts with STARTTLS: set Security to STARTTLS (usually port 587 or 25).",
  },
  smtp_auth_failed: {
    status: 502,
    summary: "The server rejected the username or password (535): check both; some providers need an app password or OAuth.",
  },
  smtp_auth_unsupported: {
    status: 502,
    summary:
      "The server offers no login method Mailroom can use: check the security mode, or clear the username for a server without login.",
  },
  sender_rejected: {
    status: 502,
    summary: "The server refused the from address (MAIL FROM): use an address or domain this server may send as.",
  },
  recipient_rejected: { status: 502, summary: "The server refused this recipient (5xx on RCPT TO); it will not be retried." },
  message_rejected: { status: 502, summary: "The server refused the message itself; the response says why." },
  temporary_failure: { status: 502, summary: "The server answered with a temporary error (4xx); Mailroom retries with backoff." },
  provider_unauthorized: { status: 502, summary: "The provider rejected the API key or token (401/403): paste a valid key." },
  provider_rate_limited: {
    status: 502,
    summary: "The provider asked Mailroom to slow down (429); it retries after the time it named.",
  },
  provider_unavailable: {
    status: 502,
    summary: "The provider answered with a server error (5xx); Mailroom retries with backoff.",
  },
  not_smtp_server: {
    status: 502,
    summary:
      "What answered on that host and port did not greet with an SMTP 220 line, so it is not an SMTP server: check the host and port (or set Security to TLS for a port that expects TLS from the first byte).",
  },
  oauth_not_authorized: { status: 409, summary: "No account is authorized for this server: use 'Authorize account'." },
  oauth_reauthorization_required: {
    status: 409,
    summary: "The account's authorization was revoked or expired: use 'Authorize account' again; held messages then go out.",
  },
  oauth_token_unavailable: {
    status: 502,
    summary: "The OAuth token endpoint failed for a moment; Mailroom retries with backoff.",
  },
  // OAuth: "Authorize account" and its callback (the summary is the fix shown to the admin)
  oauth_not_supported: {
    status: 409,
    summary:
      "This server has nobody to authorize: its driver does not sign in with OAuth (only the Google and Microsoft drivers do), or it uses application credentials.",
  },
  oauth_client_missing: {
    status: 409,
    summary: "Enter the client ID and client secret from Google Cloud or Microsoft Entra and save, then authorize.",
  },
  oauth_session_required: {
    status: 400,
    summary:
      "Authorize from the admin UI while signed in: the provider sends the browser back, and it must carry the session that started.",
  },
  oauth_state_invalid: {
    status: 400,
    summary: "The sign-in reply does not match any authorization Mailroom started: use 'Authorize account' again.",
  },
  oauth_state_expired: {
    status: 400,
    summary: "The authorization took longer than 10 minutes: use 'Authorize account' again and finish within 10 minutes.",
  },
  oauth_state_reused: {
    status: 400,
    summary: "This sign-in reply was already used (a reload or the back button): use 'Authorize account' again.",
  },
  oauth_session_mismatch: {
    status: 403,
    summary: "The authorization was started by another user or session: finish it in the browser session that started it.",
  },
  oauth_access_denied: {
    status: 400,
    summary:
      "Access was declined on the provider's consent page (or needs an administrator's approval): authorize again and allow every permission.",
  },
  oauth_scope_missing: {
    status: 400,
    summary:
      "The provider did not grant the driver's sending scope (Gmail SMTP: https://mail.google.com/; Gmail API: gmail.send; Microsoft 365: SMTP.Send; Microsoft Graph: Mail.Send): add it to the consent screen or API permissions, authorize again and tick every box.",
  },
  oauth_redirect_uri_mismatch: {
    status: 400,
    summary:
      "The provider does not accept this redirect URI: register the server's Redirect URI exactly (scheme, host, port, path) and check MAILROOM_PUBLIC_URL.",
  },
  oauth_invalid_client: {
    status: 400,
    summary:
      "The provider rejected the client ID or client secret: copy both again from Google Cloud or Microsoft Entra (create a new secret if it expired).",
  },
  oauth_app_rejected: {
    status: 400,
    summary:
      "The provider refused the application's own credentials (client secret, certificate, tenant, or a service account's domain-wide delegation); the message says which and where to fix it.",
  },
  oauth_code_rejected: {
    status: 400,
    summary:
      "The provider refused the authorization code (expired, already used, or the PKCE verifier did not match): use 'Authorize account' again.",
  },
  oauth_refresh_token_missing: {
    status: 400,
    summary:
      "The provider gave no refresh token, so Mailroom could not send later: for Google remove Mailroom at myaccount.google.com/permissions, for Microsoft allow offline_access, then authorize again.",
  },
  oauth_account_unknown: {
    status: 400,
    summary: "The provider did not say which mailbox signed in: allow the 'openid' and 'email' permissions and authorize again.",
  },
  oauth_provider_error: {
    status: 400,
    summary: "The provider refused the authorization request; the message gives its error code and description.",
  },
  oauth_exchange_failed: {
    status: 502,
    summary: "The provider's token endpoint failed or could not be reached: try 'Authorize account' again in a moment.",
  },
  // Application webhooks
  webhook_not_found: { status: 404, summary: "No webhook of yours has that id." },
  webhook_delivery_not_found: { status: 404, summary: "No delivery of a webhook of yours has that id." },
  webhook_delivery_pending: {
    status: 409,
    summary: "The delivery is still waiting to be delivered (or being tried): replay it once it is delivered or failed.",
  },
  webhook_limit_reached: {
    status: 409,
    summary: "You have the most webhooks one owner may have (20): delete one, or send several event types to one URL.",
  },
  // Alerts (src/events/alerts): channels, and what a test or an alert met
  alert_channel_not_found: { status: 404, summary: "No alert channel has that id; it may have been deleted." },
  alert_receiver_error: {
    status: 502,
    summary:
      "The alert receiver answered with an error status (the message gives it): 404 or 410 means the webhook was removed at the receiver (create a new one), 401 or 403 that it refused (check its secret or token); 5xx and 429 are tried again.",
  },
  alert_not_sendable: {
    status: 409,
    summary:
      "No email server can carry this alert: an alert about a server never goes through it, and no other server is ready. Add a second server or a webhook channel.",
  },
  // Secrets and storage
  secret_key_missing: {
    status: 500,
    summary: "A stored secret was encrypted with a key Mailroom no longer has; restore the key or set the secret again.",
  },
  storage_busy: { status: 503, summary: "The database is busy for a moment (locked, or no free connection); retry the request." },
  storage_unavailable: {
    status: 503,
    summary: "The database cannot be reached (restarting or down); Mailroom reconnects on its own: retry in a few seconds.",
  },
  storage_full: { status: 507, summary: "The database's disk is full: free disk space (the message names where), then retry." },
  internal_error: { status: 500, summary: "Something failed inside Mailroom; the log has the details." },
} as const satisfies Record<string, ErrorEntry>;

export type SharedErrorCode = keyof typeof errorCatalogue;

declare const declaredByADriver: unique symbol;
/** A driver's own code: only `declareDriverErrors` makes one, so a misspelt code does not compile. */
export type DriverErrorCode = string & { readonly [declaredByADriver]: true };

export type ErrorCode = SharedErrorCode | DriverErrorCode;

/** Codes drivers declared, filled as their modules load (the kernel imports no driver). */
const driverErrors = new Map<string, ErrorEntry>();

/**
 * Declares a driver's own codes (in its folder's errors.ts) and returns them typed for
 * `DeliveryError`. Whatever can throw such a code has loaded its declaration, so every
 * layer can look it up with `errorEntry`. A code the catalogue or another driver already
 * has with another meaning is refused at load: codes are API and must mean one thing.
 */
export function declareDriverErrors<const T extends Record<string, ErrorEntry>>(
  errors: T,
): { readonly [K in keyof T]: DriverErrorCode } {
  const codes: Record<string, string> = {};
  for (const [code, entry] of Object.entries(errors)) {
    const known = Object.hasOwn(errorCatalogue, code) ? errorCatalogue[code as SharedErrorCode] : driverErrors.get(code);
    if (known && (known.status !== entry.status || known.summary !== entry.summary)) {
      throw new Error(`Error code ${code} is declared twice with different meanings`);
    }
    driverErrors.set(code, entry);
    codes[code] = code;
  }
  return codes as { readonly [K in keyof T]: DriverErrorCode };
}

/** Every code drivers have declared so far (the loaded ones'). */
export function declaredDriverCodes(): string[] {
  return [...driverErrors.keys()];
}

/** The status and fix of a shared or declared code. */
export function errorEntry(code: ErrorCode): ErrorEntry {
  if (Object.hasOwn(errorCatalogue, code)) return errorCatalogue[code as SharedErrorCode];
  return driverErrors.get(code) ?? errorCatalogue.internal_error;
}

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
    super(message ?? errorEntry(code).summary);
    this.name = "MailroomError";
    this.code = code;
    this.status = errorEntry(code).status;
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
