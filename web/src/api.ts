/** The Mailroom API as the admin UI uses it: one fetch wrapper and the shapes it answers. */

export type Permission =
  | "email-servers.view"
  | "email-servers.update"
  | "email-servers.test"
  | "messages.send"
  | "messages.view"
  | "users.manage"
  | "audit.view";

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
  { key: "users.manage", label: "Manage users, groups and tokens", allows: "Add and change users, groups and API tokens." },
  { key: "audit.view", label: "View the audit log", allows: "Read who changed what, and when." },
];

/** What the server tells the UI about itself, for ready-to-run examples. */
export interface Info {
  publicUrl: string;
  apiDocsUrl: string;
  /** SMTP submission for applications, or null while it is off. */
  smtp: { host: string; port: number | null; tlsPort: number | null } | null;
}

export interface User {
  id: string;
  email: string;
  name: string;
  superAdmin: boolean;
  disabled: boolean;
  groups: { id: string; name: string }[];
  permissions: Permission[];
  /** The password was set by someone else: the user chooses their own before anything else. */
  mustChangePassword: boolean;
  /** API tokens of theirs that still work (and stop working if they are deleted). */
  activeTokens: number;
  createdAt: string;
  updatedAt: string;
}

/** On users, groups and tokens read with users.manage: whether you may change it, and why not. */
export interface Manageable {
  manageable?: boolean;
  notManageableReason?: string | null;
}

export interface Group {
  id: string;
  name: string;
  permissions: Permission[];
  members: number;
}

export interface Token {
  id: string;
  name: string;
  prefix: string;
  permissions: Permission[];
  serverIds: string[] | null;
  createdAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
}

export type FieldType = "text" | "integer" | "boolean" | "select" | "host" | "url" | "email" | "list";
export type SettingValue = string | number | boolean | string[];

export interface DriverField {
  key: string;
  label: string;
  type: FieldType;
  default?: SettingValue | null;
  required: boolean;
  secret: boolean;
  readOnly: boolean;
  help: string;
  options?: { value: string; label: string }[];
  min?: number;
  max?: number;
  placeholder?: string;
  /** Says where the server's secrets go (host, port, account…): changing it needs them again. */
  destination?: boolean;
}

export interface Driver {
  id: string;
  label: string;
  description: string;
  oauthProvider: "google" | "microsoft" | null;
  fields: DriverField[];
  /** Values Mailroom sets, known before a server is saved (the OAuth redirect URI). */
  derived?: Record<string, string>;
}

export type ServerStatus = "ready" | "incomplete" | "not_authorized" | "reauthorization_required" | "failing";

export interface EmailServer {
  id: string;
  name: string;
  driver: string;
  fromAddress: string;
  fromName: string;
  isDefault: boolean;
  status: ServerStatus;
  statusDetail: string | null;
  missingSettings: string[];
  settings: Record<string, SettingValue | { set: boolean } | null>;
  /** When the OAuth grant ends, if the API tells (not every version does). */
  oauthExpiresAt?: string | null;
  /** The server's circuit breaker and held mail (answers about one server carry it). */
  delivery?: ServerDelivery;
  createdAt: string;
  updatedAt: string;
}

export interface ServerDelivery {
  /** open: the server is failing, its mail held until a check (probe) passes. */
  state: "closed" | "open";
  consecutiveFailures: number;
  openedAt: string | null;
  nextProbeAt: string | null;
  failedProbes: number;
  lastProbeAt: string | null;
  lastProbeError: string | null;
  probing: boolean;
  heldMessages: number;
}

export interface TestStep {
  step: string;
  ok: boolean;
  ms: number;
  detail: string;
  /** Passed, with a risk the admin should weigh (e.g. no encryption). */
  warning?: boolean;
}

export interface TestReport {
  ok: boolean;
  mode: "check" | "send";
  steps: TestStep[];
  transcript: string[];
  messageId?: string;
  /** The test email's entry in the delivery log. */
  logId?: string;
  /** What the server called it (a Capture server: the captured message's id). */
  providerMessageId?: string;
  error?: { code: string; message: string; hint: string; remote?: { code?: number; command?: string; response?: string } };
}

export interface Address {
  address: string;
  name?: string;
}

export type MessageStatus = "queued" | "sending" | "sent" | "failed" | "held";

export interface Message {
  id: string;
  status: MessageStatus;
  server: { id: string; name: string };
  from: Address;
  to: Address[];
  cc: Address[];
  bcc: Address[];
  replyTo: Address[];
  subject: string;
  messageId: string;
  attemptCount: number;
  maxAttempts: number;
  nextAttemptAt: string | null;
  lastError: { code: string; message: string } | null;
  providerMessageId: string | null;
  createdAt: string;
  updatedAt: string;
  sentAt: string | null;
  /** A server test's email. */
  test?: boolean;
  source: MessageSource;
}

/** How a message reached Mailroom: by API, or over SMTP (with the session's facts). */
export interface MessageSource {
  kind: "api" | "smtp";
  /** The principal's label, e.g. "token ci-runner". */
  by?: string;
  username?: string;
  clientIp?: string;
  ehlo?: string;
  mailFrom?: string;
  tls?: boolean;
}

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

export interface Attempt {
  at: string;
  durationMs: number;
  server: { id: string; name: string };
  outcome: string;
  errorCode: string | null;
  response: { code: number | null; command: string | null; text: string | null };
  providerMessageId: string | null;
}

export interface CapturedSummary {
  id: string;
  capturedAt: string;
  from: Address | null;
  to: Address[];
  subject: string;
  size: number;
}

export interface CapturedMessage {
  id: string;
  capturedAt: string;
  size: number;
  raw: string;
  parsed: {
    from: Address | null;
    to: Address[];
    cc: Address[];
    subject: string;
    text: string | null;
    html: string | null;
    headers: { key: string; value: string }[];
    attachments: { filename: string | null; contentType: string; size: number; contentId: string | null }[];
  };
}

export interface ServerSeries {
  serverId: string;
  serverName: string;
  sent: number[];
  failed: number[];
}

export interface StatsRange {
  start: string;
  bucketMs: number;
  buckets: number;
  series: ServerSeries[];
  totals: { sent: number; failed: number };
}

export interface Stats {
  generatedAt: string;
  ranges: { "24h": StatsRange; "30d": StatsRange };
  queue: { queued: number; sending: number; held: number; oldestQueuedAt: string | null };
  attention: { id: string; name: string; driver: string; status: ServerStatus; statusDetail: string | null }[];
  lastSent: { serverId: string; at: string }[];
}

export interface AuditEntry {
  id: number;
  at: string;
  actor: { type: string; id: string | null; label: string };
  action: string;
  target: { type: string; id: string | null; label?: string | null };
  before: unknown;
  after: unknown;
  ip: string | null;
}

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
  const e = (data ?? {}) as { code?: string; message?: string; details?: unknown };
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
        | { type: "error"; error: { code: string; message: string } };
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
