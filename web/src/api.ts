/**
 * The Mailroom API as the admin UI uses it: one fetch wrapper, and the shapes it answers as
 * generated from the server's OpenAPI document (api-types.ts, `npm run gen:api`).
 */
import type { components } from "./api-types";

/** Each permission with what it allows, in the words the forms show. */
export const PERMISSIONS: { key: Permission; label: string; allows: string }[] = [
  { key: "email-servers.view", label: "View email servers", allows: "See the servers and their settings (never secrets)." },
  {
    key: "email-servers.update",
    label: "Edit email servers",
    allows: "Create, change, copy and delete servers, authorize accounts, clear captured mail.",
  },
  { key: "email-servers.test", label: "Test email servers", allows: "Check a server’s connection and send test emails." },
  {
    key: "messages.send",
    label: "Send and retry messages",
    allows: "Queue messages (POST /api/messages) and retry failed ones.",
  },
  {
    key: "messages.view",
    label: "View messages",
    allows: "Read the delivery log, each message’s status and attempts, and captured mail.",
  },
  {
    key: "messages.erase",
    label: "Erase a recipient’s mail",
    allows: "Remove every stored body, copy and transcript of mail to an address (DELETE /api/recipients/:address/data).",
  },
  { key: "users.manage", label: "Manage users, groups and tokens", allows: "Add and change users, groups and API tokens." },
  { key: "audit.view", label: "View the audit log", allows: "Read who changed what, and when." },
  {
    key: "settings.update",
    label: "Update settings",
    allows:
      "Change Mailroom-wide settings: how long message bodies, messages and audit entries are kept, and where bounces and complaints suppress an address.",
  },
  {
    key: "suppressions.update",
    label: "Edit the suppression list",
    allows: "Add addresses Mailroom refuses to send to, and remove them so mail to them is accepted again.",
  },
  {
    key: "webhooks.manage",
    label: "Manage webhooks",
    allows:
      "Register URLs told of message events (a token: of the messages it sent; a user with “View messages”: of every message), see their deliveries, replay them.",
  },
  {
    key: "alerts.manage",
    label: "Manage alerts",
    allows:
      "Add, change, test and delete alert channels (webhook, Slack or Teams, email through a server), set alert thresholds, read the incident history.",
  },
];

type Schemas = components["schemas"];

export type Permission = Schemas["User"]["permissions"][number];

/** What the server tells the UI about itself, for ready-to-run examples (smtp: null while it is off). */
export type Info = Schemas["Info"];
export type User = Schemas["User"];
/** A new user: the generated password is in this reply only. */
export type NewUser = Schemas["NewUser"];
/** On users, groups and tokens read with users.manage: whether you may change it, and why not. */
export type Manageable = Pick<User, "manageable" | "notManageableReason">;
export type Group = Schemas["Group"];
export type Token = Schemas["Token"];
/** A new token: its value is in this reply only. */
export type NewToken = Schemas["NewToken"];
export type DriverField = Schemas["DriverField"];
export type FieldType = DriverField["type"];
export type SettingValue = NonNullable<DriverField["default"]>;
export type Driver = Schemas["Driver"];
export type EmailServer = Schemas["EmailServer"];
export type ServerStatus = EmailServer["status"];
export type ServerDelivery = Schemas["ServerDelivery"];

export type TestStep = Schemas["TestStep"];
/** A server test: its steps, the redacted transcript, and the failure with its hint. */
export type TestReport = Schemas["TestReport"];
/** "Check now": the report (null while another process probes) and the server after it. */
export type ServerChecked = Schemas["ServerChecked"];
/** A sign-in; mustChangePassword: the password was one-time. */
export type SignedIn = Schemas["SignedIn"];
/** Who is signed in: a session's user with its CSRF token (an API token gets `token` instead). */
export type Me = Schemas["Me"];
export type AuthorizationStart = Schemas["AuthorizationStart"];
export type Disconnected = Schemas["Disconnected"];
export type SmtpSubmission = Schemas["SmtpSubmission"];
export type AuditFilters = Schemas["AuditFilters"];
export type CapturedDeleted = Schemas["CapturedDeleted"];
/** A message just queued: its id and status. */
export type Queued = Schemas["Queued"];

export type Address = Schemas["Address"];
export type Message = Schemas["Message"];
export type MessageStatus = Message["status"];
export type MessageWithAttempts = Schemas["MessageWithAttempts"];
/** What a provider reported after sending: a delivery, a bounce (hard or soft), a complaint. */
export type ProviderEvent = Schemas["ProviderEvent"];
export type EventSource = Schemas["EventSource"];
export type EventSourceSetup = Schemas["EventSourceSetup"];
export type Suppression = Schemas["Suppression"];
export type SuppressionSettings = Schemas["SuppressionSettings"];

/** Whether a message left for the provider: sent, and whatever the provider reported of it since. */
export function wasSent(status: string): boolean {
  return status === "sent" || status === "delivered" || status === "bounced" || status === "complained";
}
/** How a message reached Mailroom: by API, or over SMTP (with the session's facts). */
export type MessageSource = Schemas["MessageSource"];

/** One line: "SMTP · token ci-runner · user printer · 10.0.0.7 · EHLO scanner.local". */
export function describeSource(source: MessageSource | undefined): string {
  if (!source) return "API";
  const parts = [source.kind === "smtp" ? "SMTP" : "API", source.by];
  if (source.kind === "smtp") {
    if (source.username) parts.push(`user ${source.username}`);
    parts.push(source.clientIp, source.ehlo ? `EHLO ${source.ehlo}` : undefined, source.tls ? "TLS" : "no TLS");
  }
  return parts.filter(Boolean).join(" · ");
}

export type Attempt = Schemas["Attempt"];
export type CapturedSummary = Schemas["CapturedSummary"];
export type CapturedMessage = Schemas["CapturedMessage"];
export type StatsRange = Schemas["StatsRange"];
export type ServerSeries = StatsRange["series"][number];
export type Stats = Schemas["Stats"];
/** Retention periods in force, their source, and what retention did (database size, tiers, last purge). */
export type Retention = Schemas["Retention"];
export type RetentionPeriods = Schemas["RetentionPeriods"];
export type AuditEntry = Schemas["AuditEntry"];
export type Route = Schemas["Route"];
/** An alert channel: a signed webhook, a Slack or Teams incoming webhook, or email through a server. */
export type AlertChannel = Schemas["AlertChannel"];
/** A channel just created or changed: a new signing secret is in this reply only. */
export type NewAlertChannel = Schemas["NewAlertChannel"];
export type AlertTestResult = Schemas["AlertTestResult"];
export type AlertIncident = Schemas["AlertIncident"];
export type AlertNotification = Schemas["AlertNotification"];
export type AlertThresholds = Schemas["AlertThresholds"];
export type AlertSettings = Schemas["AlertSettings"];
export type RouteExplanation = Schemas["RouteExplanation"];
/** An application's webhook (never its secret). */
export type Webhook = Schemas["Webhook"];
/** At creation and rotation only: the signing secret, shown once. */
export type WebhookWithSecret = Schemas["WebhookWithSecret"];
export type WebhookDelivery = Schemas["WebhookDelivery"];
export type WebhookEvent = Webhook["events"][number];

/** The events a webhook may hear of, with what each means, in the words the form shows. */
export const WEBHOOK_EVENTS: { key: WebhookEvent; label: string }[] = [
  { key: "queued", label: "Queued: accepted, or sent back to the queue by a retry" },
  { key: "sent", label: "Sent: the server took it" },
  { key: "failed", label: "Failed: it will not be sent (refused, out of attempts, erased)" },
  { key: "held", label: "Held: waiting for its server to be fixed" },
  { key: "delivered", label: "Delivered: the provider reports it delivered" },
  { key: "bounced", label: "Bounced: the provider reports a bounce" },
  { key: "complained", label: "Complained: the recipient marked it as spam" },
];

/** `{ items, total }`: every list the API answers (listOf in src/http/schemas.ts). */
export interface List<T> {
  items: T[];
  total: number;
}

/** An error answer of the API: its code, message, and the fields it names. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: unknown;
  /** Field path (e.g. "settings.port", "name") -> what is wrong with it. */
  readonly fields: Record<string, string>;

  constructor(status: number, code: string, message: string, details?: unknown) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
    this.fields = {};
    const problems = Array.isArray(details) ? details : details && typeof details === "object" ? [details] : [];
    for (const p of problems as { field?: unknown; message?: unknown }[]) {
      if (p && typeof p.field === "string") this.fields[p.field] = typeof p.message === "string" ? p.message : message;
    }
  }
}

let csrfToken: string | null = null;
let onUnauthenticated: () => void = () => {};

export function setCsrfToken(token: string | null): void {
  csrfToken = token;
}

/** Called when a request answers 401: the session ended (signed out elsewhere, expired). */
export function setUnauthenticatedHandler(handler: () => void): void {
  onUnauthenticated = handler;
}

/**
 * Calls the API with the session cookie. Writes carry the CSRF token; a body is sent as JSON
 * only when there is one (an empty JSON body is an error to the server).
 */
export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const response = await send(method, path, body, "application/json");
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  let data: unknown = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) throw failure(response, path, data);
  return data as T;
}

async function send(method: string, path: string, body: unknown, accept: string): Promise<Response> {
  const headers: Record<string, string> = { accept };
  if (method !== "GET" && csrfToken) headers["x-csrf-token"] = csrfToken;
  if (body !== undefined) headers["content-type"] = "application/json";
  try {
    return await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
  } catch {
    throw new ApiError(0, "network_error", "Mailroom did not answer: check that it is running and your network.");
  }
}

function failure(response: Response, path: string, data: unknown): ApiError {
  const e = (data ?? {}) as Partial<Schemas["Error"]>;
  // A session whose password someone else set can do nothing until it is changed: the
  // sign-in page asks for the new one.
  if ((response.status === 401 && !path.startsWith("/api/auth/login")) || e.code === "password_change_required") {
    onUnauthenticated();
  }
  return new ApiError(
    response.status,
    e.code ?? "http_error",
    e.message ?? `Mailroom answered ${response.status} ${response.statusText}.`,
    e.details,
  );
}

/**
 * POSTs a server test and hears each step as the server finishes it (the answer is one
 * JSON line per step, then the whole report), so the panel can show them one by one.
 */
export async function streamTest(path: string, body: unknown, onStep: (step: TestStep) => void): Promise<TestReport> {
  const response = await send("POST", path, body, "application/x-ndjson");
  if (!response.ok || !response.body) {
    const text = await response.text();
    let data: unknown = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    throw failure(response, path, data);
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffered += value;
    let end = buffered.indexOf("\n");
    while (end >= 0) {
      const line = JSON.parse(buffered.slice(0, end)) as
        | { type: "step"; step: TestStep }
        | { type: "report"; report: TestReport }
        | { type: "error"; error: Schemas["Error"] };
      buffered = buffered.slice(end + 1);
      if (line.type === "step") onStep(line.step);
      else if (line.type === "report") return line.report;
      else throw new ApiError(500, line.error.code, line.error.message);
      end = buffered.indexOf("\n");
    }
  }
  throw new ApiError(0, "network_error", "The test's answer ended early: check that Mailroom is still running.");
}

/** Query string from the defined, non-empty values. */
export function query(params: Record<string, string | number | undefined | null>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
