import type { Generated } from "kysely";

/**
 * Table types. Times are epoch milliseconds (bigint on PostgreSQL, parsed to number),
 * booleans are 0/1 integers and JSON is text, so one set of queries serves both dialects.
 */
export interface EmailServersTable {
  id: string;
  name: string;
  driver: string;
  from_address: string;
  from_name: string;
  /** 1 for the default server, NULL otherwise: a unique index then allows exactly one 1. */
  is_default: number | null;
  /** JSON object of the driver's non-secret settings. */
  settings: string;
  /** JSON object of secret setting key -> ciphertext (see secrets.ts). */
  secrets: string;
  status: string;
  /** A problem found while delivering (failing, reauthorization_required), kept until fixed. */
  fault: string | null;
  fault_detail: string | null;
  fault_at: number | null;
  /** Lower-cased text the search box matches: name, driver, from address, non-secret settings. */
  search_text: string;
  /** The OAuth grant's facts (src/oauth keeps the tokens): null until an account is authorized. */
  oauth_account: string | null;
  oauth_scopes: string | null;
  oauth_authorized_at: number | null;
  /** When the grant itself ends, if the provider said (refresh_token_expires_in). */
  oauth_expires_at: number | null;
  created_at: number;
  updated_at: number;
}

export interface UsersTable {
  id: string;
  email: string;
  name: string;
  password_hash: string;
  is_super_admin: number;
  disabled: number;
  /** 1 while the password is one someone else chose: every route but a few answers password_change_required. */
  must_change_password: number;
  created_at: number;
  updated_at: number;
}

export interface GroupsTable {
  id: string;
  name: string;
  /** JSON array of permission names. */
  permissions: string;
  created_at: number;
  updated_at: number;
}

export interface UserGroupsTable {
  user_id: string;
  group_id: string;
}

export interface SessionsTable {
  /** sha256 of the cookie value: the cookie itself is never stored. */
  id: string;
  user_id: string;
  csrf_token: string;
  created_at: number;
  expires_at: number;
}

export interface ApiTokensTable {
  id: string;
  name: string;
  /** sha256 of the token's secret part. */
  token_hash: string;
  /** JSON array of permission names. */
  permissions: string;
  /** JSON array of email server ids, or NULL for every server. */
  server_ids: string | null;
  created_by: string | null;
  created_at: number;
  expires_at: number | null;
  last_used_at: number | null;
  revoked_at: number | null;
}

export interface AuditLogTable {
  id: Generated<number>;
  at: number;
  actor_type: string;
  actor_id: string | null;
  actor_label: string;
  action: string;
  target_type: string;
  target_id: string | null;
  /** JSON, secrets replaced by "[secret changed]" / "[secret unchanged]". */
  before: string | null;
  after: string | null;
  ip: string | null;
}

export type MessageStatus = "queued" | "sending" | "sent" | "failed" | "held" | "delivered" | "bounced" | "complained";

/** Every status a message has after it left for the provider: what reports of it arrive on (src/events/provider-events). */
export const SENT_STATUSES = ["sent", "delivered", "bounced", "complained"] as const satisfies readonly MessageStatus[];

/**
 * Every status retention may purge: nothing more will happen to the message in Mailroom. In
 * the order the partial indexes of migration 014 name them: SQLite uses a partial index only
 * for a condition written exactly as the index's.
 */
export const FINISHED_STATUSES = [
  "sent",
  "failed",
  "delivered",
  "bounced",
  "complained",
] as const satisfies readonly MessageStatus[];

export interface MessagesTable {
  id: string;
  server_id: string;
  server_name: string;
  status: MessageStatus;
  from_address: string;
  from_name: string;
  /** JSON {to, cc, bcc, replyTo}: lists of {address, name?}. */
  recipients: string;
  /** Lower-cased addresses of every recipient, for the recipient filter. */
  recipient_search: string;
  subject: string;
  /** JSON {text?, html?, headers, attachments: [{filename, contentType, content (base64), contentId?}]}. */
  payload: string;
  message_id: string;
  idempotency_scope: string | null;
  idempotency_key: string | null;
  attempts: number;
  max_attempts: number;
  next_attempt_at: number;
  lease_owner: string | null;
  last_error_code: string | null;
  last_error: string | null;
  provider_message_id: string | null;
  created_by: string | null;
  /** Whether created_by is a user's or a token's id (null before migration 004 for unknown ids). */
  created_by_type?: "user" | "token" | null;
  created_at: number;
  updated_at: number;
  sent_at: number | null;
  /** 1 for a server test's email (settled when written, never retried); 0, the default, otherwise. */
  is_test?: number;
  /** How the message arrived; the column defaults to "api", so an insert may leave it out. */
  source?: MessageSource;
  /** JSON {token, username, clientIp, ehlo} of an SMTP submission (never a secret), or NULL. */
  source_detail?: string | null;
  /** JSON array of the server ids the message may go through, in order (migration 011); NULL: only server_id. */
  route_servers?: string | null;
  /** The route rule that chose the servers, by name when it matched. */
  route_name?: string | null;
  /** The application's tag for the message (routes match on it). */
  tag?: string | null;
  /** When retention removed the body (text, html, attachments, raw MIME); null while it is kept. */
  body_purged_at?: number | null;
}

export type MessageSource = "api" | "smtp";

/** The raw MIME of a message stored as its client sent it (SMTP submission). */
export interface MessageRawTable {
  message_id: string;
  mime: Buffer;
}

export interface MessageAttemptsTable {
  id: Generated<number>;
  message_id: string;
  server_id: string;
  server_name: string;
  started_at: number;
  duration_ms: number;
  /** sent, or the FailureKind of the error. */
  outcome: string;
  error_code: string | null;
  remote_code: number | null;
  remote_command: string | null;
  remote_response: string | null;
  provider_message_id: string | null;
}

/** An "Authorize account" in progress (src/oauth/flow.ts). */
export interface OAuthAuthorizationsTable {
  /** sha256 of the state sent to the provider. */
  state_hash: string;
  server_id: string;
  provider: string;
  user_id: string;
  /** sha256 of the session cookie that started it (the sessions table's id). */
  session_hash: string;
  /** PKCE code_verifier, encrypted. */
  code_verifier: string;
  redirect_uri: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
}

/** One OAuth grant's tokens per email server, encrypted (src/oauth/token-store.ts). */
export interface OAuthTokensTable {
  server_id: string;
  provider: string;
  account: string;
  scopes: string;
  refresh_token: string;
  access_token: string | null;
  access_expires_at: number | null;
  access_obtained_at: number | null;
  grant_expires_at: number | null;
  generation: number;
  lease_owner: string | null;
  lease_until: number | null;
  refreshed_at: number | null;
  refresh_error_code: string | null;
  refresh_error: string | null;
  refresh_error_at: number | null;
  /** App-only tokens: the server's updated_at they were obtained for; null for a person's grant. */
  credentials_version?: number | null;
  created_at: number;
  updated_at: number;
}

/** Failed sign-ins and password changes per key ("account:<email>", "ip:<address>"). */
export interface AuthFailuresTable {
  key: string;
  failures: number;
  last_failure_at: number;
  /** No attempt for this key is checked before this time (epoch ms). */
  blocked_until: number;
}

/** A server's circuit breaker (src/queue/breaker.ts). */
export interface ServerBreakersTable {
  server_id: string;
  consecutive_failures: number;
  opened_at: number | null;
  next_probe_at: number | null;
  probes: number;
  probe_owner: string | null;
  probe_until: number | null;
  last_probe_at: number | null;
  last_probe_error: string | null;
  updated_at: number;
}

/** A route rule (src/core/routes.ts): what it matches, and the servers it sends through. */
export interface RoutesTable {
  id: string;
  name: string;
  position: number;
  /** A lower-cased address (a@example.com) or domain (example.com); NULL: any. */
  match_from: string | null;
  match_token_id: string | null;
  match_tag: string | null;
  /** Lower-cased domain every recipient must be in; NULL: any. */
  match_recipient_domain: string | null;
  /** JSON array of email server ids: primary first. */
  server_ids: string;
  created_at: number;
  updated_at: number;
}

/** A setting an admin changed in the UI, overriding the environment (src/core/retention-policy.ts). */
export interface AppSettingsTable {
  key: string;
  /** JSON. */
  value: string;
  updated_at: number;
  /** The actor's label. */
  updated_by: string;
}

/** The one row (id 1) of retention: the purging process's lease and what the last purge did. */
export interface RetentionRunsTable {
  id: number;
  lease_owner: string | null;
  lease_until: number | null;
  last_started_at: number | null;
  last_finished_at: number | null;
  last_bodies: number;
  last_messages: number;
  last_audit: number;
  last_error: string | null;
}

export type ProviderEventType = "delivered" | "bounced" | "complained";
export type EventProvider = "mailgun" | "postmark" | "ses";

/** What a provider reported about a message after it was sent (migration 014). */
export interface MessageEventsTable {
  id: string;
  message_id: string;
  server_id: string;
  provider: EventProvider;
  type: ProviderEventType;
  /** For a bounce: "hard" (the address does not exist) or "soft" (full mailbox, a delay). */
  bounce_kind: "hard" | "soft" | null;
  recipient: string | null;
  /** The provider's words (an SMTP reply, a description), control characters removed. */
  diagnostic: string | null;
  /** The provider's own id for the event: the same event again adds nothing. */
  provider_event_id: string;
  /** When the provider says it happened. */
  at: number;
  received_at: number;
}

export type SuppressionReason = "hard_bounce" | "complaint" | "manual";

/** An address Mailroom refuses at accept time (src/events/suppressions.ts). */
export interface SuppressionsTable {
  id: string;
  /** Lower case. */
  address: string;
  /** NULL: refused for every server. */
  server_id: string | null;
  reason: SuppressionReason;
  detail: string | null;
  /** The message whose bounce or complaint added it. */
  message_id: string | null;
  created_at: number;
  /** The actor's label ("mailroom" for an automatic entry). */
  created_by: string;
}

/** A server's source of provider events as an admin set it up (src/events/provider-events/sources.ts). */
export interface EventSourcesTable {
  server_id: string;
  provider: EventProvider;
  /** Mailgun's webhook signing key, encrypted. */
  signing_key: string | null;
  /** sha256 (hex) of the secret Mailroom generated and showed once. */
  credential_hash: string | null;
  username: string | null;
  topic_arn: string | null;
  accepted: number;
  unmatched: number;
  refused: number;
  last_event_at: number | null;
  last_refused_at: number | null;
  created_at: number;
  updated_at: number;
  updated_by: string;
}

export interface ProviderEventNoncesTable {
  key: string;
  seen_at: number;
}

/** An application's webhook (src/events/webhooks): where to tell which message events. */
export interface WebhooksTable {
  id: string;
  owner_type: "token" | "user";
  owner_id: string;
  /** The owner's label when it registered the webhook ("token Billing", an email). */
  owner_label: string;
  url: string;
  /** Encrypted (SecretBox) `whsec_…`. */
  secret: string;
  /** Encrypted; signs beside the new one until previous_secret_until, after a rotation. */
  previous_secret: string | null;
  previous_secret_until: number | null;
  /** JSON array of event types. */
  events: string;
  enabled: number;
  description: string;
  created_at: number;
  /** The actor's label. */
  created_by: string;
  updated_at: number;
}

export type WebhookDeliveryStatus = "pending" | "delivered" | "failed";

/** One event for one webhook: an outbox row, claimed with a lease like a message. */
export interface WebhookDeliveriesTable {
  id: string;
  webhook_id: string;
  message_id: string | null;
  event_type: string;
  payload: string;
  status: WebhookDeliveryStatus;
  attempts: number;
  next_attempt_at: number;
  lease_owner: string | null;
  last_error: string | null;
  created_at: number;
  updated_at: number;
  delivered_at: number | null;
}

export interface WebhookAttemptsTable {
  id: Generated<number>;
  delivery_id: string;
  started_at: number;
  duration_ms: number;
  http_status: number | null;
  error: string | null;
  response_excerpt: string | null;
}

/** An alert channel (src/events/alerts/channels.ts). */
export interface AlertChannelsTable {
  id: string;
  name: string;
  /** webhook | slack | email */
  type: string;
  enabled: number;
  /** The generic webhook's URL; NULL for Slack (its URL is the secret) and email. */
  url: string | null;
  /** Where it posts, as shown: the host only. */
  url_host: string | null;
  /** Encrypted: the webhook's signing secret, or the Slack/Teams URL. */
  secret: string | null;
  server_id: string | null;
  /** JSON array of addresses (email). */
  recipients: string | null;
  created_at: number;
  updated_at: number;
}

/** A condition from when it started to when it ended (src/events/alerts/incidents.ts). */
export interface AlertIncidentsTable {
  id: string;
  kind: string;
  /** A server's id, or '' for the whole installation. */
  subject: string;
  subject_label: string;
  key: string;
  /** `key` while open, NULL once resolved (unique: one open incident per key). */
  open_key: string | null;
  title: string;
  detail: string;
  /** JSON. */
  last_values: string;
  opened_at: number;
  resolved_at: number | null;
  resolution: string | null;
  updated_at: number;
}

/** One alert to one channel (src/events/alerts/dispatch.ts). */
export interface AlertNotificationsTable {
  id: string;
  incident_id: string;
  channel_id: string | null;
  channel_name: string;
  channel_type: string;
  event: "opened" | "resolved";
  status: "pending" | "delivered" | "queued" | "failed" | "not_sent";
  attempts: number;
  next_attempt_at: number;
  lease_owner: string | null;
  lease_until: number | null;
  error_code: string | null;
  error: string | null;
  response_status: number | null;
  message_id: string | null;
  server_name: string | null;
  created_at: number;
  updated_at: number;
  finished_at: number | null;
}

export interface Database {
  message_events: MessageEventsTable;
  suppressions: SuppressionsTable;
  event_sources: EventSourcesTable;
  provider_event_nonces: ProviderEventNoncesTable;
  routes: RoutesTable;
  messages: MessagesTable;
  message_raw: MessageRawTable;
  message_attempts: MessageAttemptsTable;
  email_servers: EmailServersTable;
  users: UsersTable;
  groups: GroupsTable;
  user_groups: UserGroupsTable;
  sessions: SessionsTable;
  api_tokens: ApiTokensTable;
  auth_failures: AuthFailuresTable;
  audit_log: AuditLogTable;
  oauth_authorizations: OAuthAuthorizationsTable;
  oauth_tokens: OAuthTokensTable;
  server_breakers: ServerBreakersTable;
  app_settings: AppSettingsTable;
  retention_runs: RetentionRunsTable;
  webhooks: WebhooksTable;
  webhook_deliveries: WebhookDeliveriesTable;
  webhook_attempts: WebhookAttemptsTable;
  alert_channels: AlertChannelsTable;
  alert_incidents: AlertIncidentsTable;
  alert_notifications: AlertNotificationsTable;
}
