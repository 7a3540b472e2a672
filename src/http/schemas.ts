import { type TSchema, Type } from "typebox";
import { permissions } from "../auth/permissions.js";
import { webhookSchemas } from "./webhook-schemas.js";

/** Shared request shapes. Objects refuse unknown fields: a typo is an error, not a no-op. */
export const listQueryProperties = {
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })),
  offset: Type.Optional(Type.Integer({ minimum: 0, default: 0 })),
};

export const ListQuery = Type.Object(listQueryProperties, { additionalProperties: false });

export const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 200 }) }, { additionalProperties: false });

export const ErrorReply = Type.Object({
  code: Type.String(),
  message: Type.String(),
  details: Type.Optional(Type.Unknown()),
});

export const PermissionList = Type.Array(Type.String({ maxLength: 64 }), { maxItems: 32 });

/*
 * Response shapes, one copy of the contract: registered by $id so the OpenAPI document names
 * them (components.schemas) and web/src/api-types.ts is generated from it (npm run gen:api).
 * Fastify serializes a reply through its schema and drops every property the schema lacks:
 * a field the server sends must be listed here, or it silently disappears from the API.
 */
const nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);
/**
 * One of these strings. An enum, not a union of literals: the serializer writes any string as
 * it is, where a union would fail the whole reply on a value added later.
 */
const oneOf = <T extends string>(values: readonly T[], options: { nullable?: boolean } = {}) =>
  Type.Unsafe<T>({ type: "string", enum: options.nullable ? [...values, null] : [...values], ...options });
/** A reference to a response shape registered below. */
export const ref = (id: string) => Type.Unsafe({ $ref: `${id}#` });
/** `{ items, total }` of one shape. */
export const listOf = (id: string) => Type.Object({ items: Type.Array(ref(id)), total: Type.Integer() });

const SettingValue = Type.Union([Type.String(), Type.Number(), Type.Boolean(), Type.Array(Type.String())]);
const Named = Type.Object({ id: Type.String(), name: Type.String() });
const PermissionName = oneOf(permissions);
const ServerStatus = oneOf(["ready", "incomplete", "not_authorized", "reauthorization_required", "failing"]);
/** On users, groups and tokens read with users.manage: whether the caller may change it, and why not. */
const manageable = {
  manageable: Type.Optional(Type.Boolean()),
  notManageableReason: Type.Optional(nullable(Type.String())),
};

export const ErrorSchema = Type.Object(
  { code: Type.String(), message: Type.String(), details: Type.Optional(Type.Unknown()) },
  { $id: "Error" },
);

const Address = Type.Object({ address: Type.String(), name: Type.Optional(Type.String()) }, { $id: "Address" });

const DriverField = Type.Object(
  {
    key: Type.String(),
    label: Type.String(),
    type: oneOf(["text", "integer", "boolean", "select", "host", "url", "email", "list"]),
    default: Type.Optional(nullable(SettingValue)),
    required: Type.Boolean(),
    secret: Type.Boolean(),
    readOnly: Type.Boolean(),
    help: Type.String(),
    options: Type.Optional(Type.Array(Type.Object({ value: Type.String(), label: Type.String() }))),
    min: Type.Optional(Type.Number()),
    max: Type.Optional(Type.Number()),
    placeholder: Type.Optional(Type.String()),
    destination: Type.Optional(Type.Boolean()),
    multiline: Type.Optional(Type.Boolean()),
    when: Type.Optional(Type.Object({ key: Type.String(), values: Type.Array(Type.String()) })),
  },
  { $id: "DriverField" },
);

const Driver = Type.Object(
  {
    id: Type.String(),
    label: Type.String(),
    description: Type.String(),
    oauthProvider: oneOf(["google", "microsoft"], { nullable: true }),
    /** The scope an OAuth driver needs granted to send (what the setup asks the admin to add). */
    oauthScope: nullable(Type.String()),
    appOnly: Type.Optional(Type.Object({ methods: Type.Array(Type.String()), scope: Type.String() })),
    fields: Type.Array(ref("DriverField")),
    derived: Type.Record(Type.String(), Type.String()),
    /** The driver's own error codes (src/drivers/<id>/README.md), besides the shared ones. */
    errors: Type.Array(Type.Object({ code: Type.String(), status: Type.Integer(), summary: Type.String() })),
  },
  { $id: "Driver" },
);

/** A server's circuit breaker as its page shows it (src/queue/breaker.ts BreakerView). */
const ServerDelivery = Type.Object(
  {
    state: oneOf(["closed", "open"]),
    consecutiveFailures: Type.Integer(),
    openedAt: nullable(Type.String()),
    nextProbeAt: nullable(Type.String()),
    failedProbes: Type.Integer(),
    lastProbeAt: nullable(Type.String()),
    lastProbeError: nullable(Type.String()),
    probing: Type.Boolean(),
    heldMessages: Type.Integer(),
  },
  { $id: "ServerDelivery" },
);

const emailServerProperties = {
  id: Type.String(),
  name: Type.String(),
  driver: Type.String(),
  fromAddress: Type.String(),
  fromName: Type.String(),
  isDefault: Type.Boolean(),
  status: ServerStatus,
  statusDetail: nullable(Type.String()),
  missingSettings: Type.Array(Type.String()),
  settings: Type.Record(Type.String(), nullable(Type.Union([SettingValue, Type.Object({ set: Type.Boolean() })]))),
  oauthExpiresAt: nullable(Type.String()),
  createdAt: Type.String(),
  updatedAt: Type.String(),
  /** On the answers about one server (not in lists): its breaker, held mail and next probe. */
  delivery: Type.Optional(ref("ServerDelivery")),
};
const EmailServer = Type.Object(emailServerProperties, { $id: "EmailServer" });

/** A copy: the notice says what was not copied (an OAuth grant), or null. */
const EmailServerCopy = Type.Object({ ...emailServerProperties, notice: nullable(Type.String()) }, { $id: "EmailServerCopy" });

const MessageSource = Type.Object(
  {
    kind: oneOf(["api", "smtp"]),
    by: Type.Optional(Type.String()),
    username: Type.Optional(Type.String()),
    clientIp: Type.Optional(Type.String()),
    ehlo: Type.Optional(Type.String()),
    mailFrom: Type.Optional(Type.String()),
    tls: Type.Optional(Type.Boolean()),
  },
  { $id: "MessageSource" },
);

export const MESSAGE_STATUSES = ["queued", "sending", "sent", "failed", "held", "delivered", "bounced", "complained"] as const;
const MessageStatus = oneOf(MESSAGE_STATUSES);

/** A message just queued (one, a batch's each, a released capture): 202 once it is stored. */
const Queued = Type.Object({ id: Type.String(), status: MessageStatus }, { $id: "Queued" });

const messageProperties = {
  id: Type.String(),
  status: MessageStatus,
  server: Named,
  from: ref("Address"),
  to: Type.Array(ref("Address")),
  cc: Type.Array(ref("Address")),
  bcc: Type.Array(ref("Address")),
  replyTo: Type.Array(ref("Address")),
  subject: Type.String(),
  messageId: Type.String(),
  attemptCount: Type.Integer(),
  maxAttempts: Type.Integer(),
  nextAttemptAt: nullable(Type.String()),
  lastError: nullable(Type.Object({ code: Type.String(), message: Type.String() })),
  providerMessageId: nullable(Type.String()),
  createdAt: Type.String(),
  updatedAt: Type.String(),
  sentAt: nullable(Type.String()),
  test: Type.Boolean(),
  source: ref("MessageSource"),
  route: Type.Union([Type.String(), Type.Null()], {
    description: "The route rule that chose its servers; null: named or default server",
  }),
  tag: Type.Union([Type.String(), Type.Null()]),
  bodyRemovedAt: nullable(Type.String()),
  bodyNote: nullable(Type.String()),
};

const Message = Type.Object(messageProperties, { $id: "Message" });

const Attempt = Type.Object(
  {
    at: Type.String(),
    durationMs: Type.Integer(),
    server: Named,
    outcome: Type.String(),
    errorCode: nullable(Type.String()),
    response: Type.Object({
      code: nullable(Type.Integer()),
      command: nullable(Type.String()),
      text: nullable(Type.String()),
    }),
    providerMessageId: nullable(Type.String()),
  },
  { $id: "Attempt" },
);

const MessageWithAttempts = Type.Object(
  {
    ...messageProperties,
    attempts: Type.Array(ref("Attempt")),
    // What the provider reported after sending (src/http/event-schemas.ts), oldest first.
    events: Type.Array(ref("ProviderEvent")),
  },
  { $id: "MessageWithAttempts" },
);

const CapturedSummary = Type.Object(
  {
    id: Type.String(),
    capturedAt: Type.String(),
    from: nullable(ref("Address")),
    to: Type.Array(ref("Address")),
    subject: Type.String(),
    size: Type.Integer(),
    bodyRemovedAt: nullable(
      Type.String({
        description: "When retention removed the body (the headers that name the message are kept); null while kept",
      }),
    ),
  },
  { $id: "CapturedSummary" },
);

const CapturedMessage = Type.Object(
  {
    id: Type.String(),
    capturedAt: Type.String(),
    size: Type.Integer(),
    bodyRemovedAt: nullable(Type.String({ description: "When retention removed the body; null while kept" })),
    raw: Type.String(),
    parsed: Type.Object({
      from: nullable(ref("Address")),
      to: Type.Array(ref("Address")),
      cc: Type.Array(ref("Address")),
      subject: Type.String(),
      text: nullable(Type.String()),
      html: nullable(Type.String()),
      headers: Type.Array(Type.Object({ key: Type.String(), value: Type.String() })),
      attachments: Type.Array(
        Type.Object({
          filename: nullable(Type.String()),
          contentType: Type.String(),
          size: Type.Integer(),
          contentId: nullable(Type.String()),
        }),
      ),
    }),
  },
  { $id: "CapturedMessage" },
);

const userProperties = {
  id: Type.String(),
  email: Type.String(),
  name: Type.String(),
  superAdmin: Type.Boolean(),
  disabled: Type.Boolean(),
  groups: Type.Array(Named),
  permissions: Type.Array(PermissionName),
  mustChangePassword: Type.Boolean(),
  activeTokens: Type.Integer(),
  createdAt: Type.String(),
  updatedAt: Type.String(),
  ...manageable,
};
const User = Type.Object(userProperties, { $id: "User" });
/** A new user: the generated password is in this reply only (null when the admin chose one). */
const NewUser = Type.Object({ ...userProperties, generatedPassword: nullable(Type.String()) }, { $id: "NewUser" });

const Group = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    permissions: Type.Array(PermissionName),
    members: Type.Integer(),
    createdAt: Type.String(),
    updatedAt: Type.String(),
    ...manageable,
  },
  { $id: "Group" },
);

const tokenProperties = {
  id: Type.String(),
  name: Type.String(),
  prefix: Type.String(),
  permissions: Type.Array(PermissionName),
  serverIds: nullable(Type.Array(Type.String())),
  createdBy: nullable(Type.String()),
  createdAt: Type.String(),
  expiresAt: nullable(Type.String()),
  lastUsedAt: nullable(Type.String()),
  ...manageable,
};
const Token = Type.Object(tokenProperties, { $id: "Token" });
/** A new token: its value is in this reply only. */
const NewToken = Type.Object({ ...tokenProperties, token: Type.String() }, { $id: "NewToken" });

const AuditEntry = Type.Object(
  {
    id: Type.Integer(),
    at: Type.String(),
    actor: Type.Object({ type: Type.String(), id: nullable(Type.String()), label: Type.String() }),
    action: Type.String(),
    target: Type.Object({ type: Type.String(), id: nullable(Type.String()), label: nullable(Type.String()) }),
    // What changed, as the change recorded it: any JSON.
    before: Type.Unknown(),
    after: Type.Unknown(),
    ip: nullable(Type.String()),
  },
  { $id: "AuditEntry" },
);

const StatsRange = Type.Object(
  {
    start: Type.String(),
    bucketMs: Type.Integer(),
    buckets: Type.Integer(),
    series: Type.Array(
      Type.Object({
        serverId: Type.String(),
        serverName: Type.String(),
        sent: Type.Array(Type.Integer()),
        failed: Type.Array(Type.Integer()),
      }),
    ),
    totals: Type.Object({ sent: Type.Integer(), failed: Type.Integer() }),
  },
  { $id: "StatsRange" },
);

const Stats = Type.Object(
  {
    generatedAt: Type.String(),
    ranges: Type.Object({ "24h": ref("StatsRange"), "30d": ref("StatsRange") }),
    queue: Type.Object({
      queued: Type.Integer(),
      sending: Type.Integer(),
      held: Type.Integer(),
      oldestQueuedAt: nullable(Type.String()),
    }),
    attention: Type.Array(
      Type.Object({
        id: Type.String(),
        name: Type.String(),
        driver: Type.String(),
        status: ServerStatus,
        statusDetail: nullable(Type.String()),
        missingSettings: Type.Array(Type.String()),
      }),
    ),
    lastSent: Type.Array(Type.Object({ serverId: Type.String(), at: Type.String() })),
    dailyLimitReached: Type.Array(
      Type.Object({ id: Type.String(), name: Type.String(), sent: Type.Integer(), limit: Type.Integer() }),
    ),
    deliverability: Type.Object({
      days: Type.Integer(),
      servers: Type.Array(
        Type.Object({
          serverId: Type.String(),
          serverName: Type.String(),
          sent: Type.Integer(),
          reported: Type.Integer(),
          delivered: Type.Integer(),
          bounced: Type.Integer(),
          complained: Type.Integer(),
          bounceRate: nullable(Type.Number()),
          complaintRate: nullable(Type.Number()),
        }),
      ),
    }),
  },
  { $id: "Stats" },
);

const Info = Type.Object(
  {
    publicUrl: Type.String(),
    apiDocsUrl: Type.String(),
    smtp: nullable(
      Type.Object({
        host: Type.String(),
        port: nullable(Type.Integer()),
        tlsPort: nullable(Type.Integer()),
        selfSigned: Type.Boolean(),
      }),
    ),
  },
  { $id: "Info" },
);

/** A sign-in: the session's CSRF token; mustChangePassword: the password was one-time. */
const SignedIn = Type.Object(
  { user: ref("User"), csrfToken: Type.String(), mustChangePassword: Type.Boolean() },
  { $id: "SignedIn" },
);

/** Who calls: a session's user with its CSRF token, or an API token's own description. */
const Me = Type.Object(
  {
    user: Type.Optional(ref("User")),
    csrfToken: Type.Optional(nullable(Type.String())),
    token: Type.Optional(
      Type.Object({
        id: Type.String(),
        label: Type.String(),
        permissions: Type.Array(PermissionName),
        serverIds: nullable(Type.Array(Type.String())),
      }),
    ),
  },
  { $id: "Me" },
);

/** One step of a server test (src/kernel/transport.ts TestStep). */
const TestStep = Type.Object(
  {
    step: Type.String(),
    ok: Type.Boolean(),
    ms: Type.Integer(),
    detail: Type.String(),
    /** Passed, with a risk the admin should weigh (e.g. no encryption). */
    warning: Type.Optional(Type.Boolean()),
  },
  { $id: "TestStep" },
);

/** A server test's report (src/queue/server-test.ts TestReport), secrets removed from the transcript. */
const TestReport = Type.Object(
  {
    ok: Type.Boolean(),
    mode: oneOf(["check", "send"]),
    steps: Type.Array(ref("TestStep")),
    transcript: Type.Array(Type.String()),
    /** The failure: its catalogue code, what happened, the fix, and the server's own words. */
    error: Type.Optional(
      Type.Object({
        code: Type.String(),
        message: Type.String(),
        hint: Type.String(),
        remote: Type.Optional(
          Type.Object({
            code: Type.Optional(Type.Integer()),
            command: Type.Optional(Type.String()),
            response: Type.Optional(Type.String()),
          }),
        ),
      }),
    ),
    messageId: Type.Optional(Type.String()),
    /** The test email's entry in the delivery log. */
    logId: Type.Optional(Type.String()),
    /** What the server called it (a Capture server: the captured message's id). */
    providerMessageId: Type.Optional(Type.String()),
  },
  { $id: "TestReport" },
);

/** "Check now": the report (null while another process probes the server) and the server after it. */
const ServerChecked = Type.Object({ report: nullable(ref("TestReport")), server: ref("EmailServer") }, { $id: "ServerChecked" });

/** The provider's sign-in page for "Authorize account", and when the offer ends. */
const AuthorizationStart = Type.Object(
  { authorizationUrl: Type.String(), expiresAt: Type.String() },
  { $id: "AuthorizationStart" },
);

/** A disconnected account: whether the provider revoked the grant, and what to know if not. */
const Disconnected = Type.Object(
  { server: ref("EmailServer"), revoked: Type.Boolean(), notice: nullable(Type.String()) },
  { $id: "Disconnected" },
);

/** What an application needs to send over SMTP submission; never a secret. */
const SmtpSubmission = Type.Object(
  {
    enabled: Type.Boolean(),
    host: Type.String(),
    port: nullable(Type.Integer()),
    tlsPort: nullable(Type.Integer()),
    maxSize: Type.Integer(),
    maxRecipients: Type.Integer(),
    fingerprint: nullable(Type.String()),
    selfSigned: Type.Boolean(),
  },
  { $id: "SmtpSubmission" },
);

/** The audit log's filter choices: the actions it holds, and each actor with their latest label. */
const AuditFilters = Type.Object(
  {
    actions: Type.Array(Type.String()),
    actors: Type.Array(Type.Object({ type: Type.String(), id: Type.String(), label: Type.String() })),
  },
  { $id: "AuditFilters" },
);

/** How many captured messages were deleted. */
const CapturedDeleted = Type.Object({ deleted: Type.Integer() }, { $id: "CapturedDeleted" });

const count = (description: string) => Type.Integer({ minimum: 0, description });

export const Erasure = Type.Object(
  {
    addressHash: Type.String({
      description: "HMAC-SHA256 of the lower-cased address under a key derived from the secret key, as <keyId>:<hex>",
    }),
    replacement: Type.String({ description: "What the address became in the delivery log's rows" }),
    messages: count("Messages that named the address (to, cc, bcc or reply-to); their bodies are gone"),
    cancelled: count("Of those, messages not yet sent: now failed with message_erased"),
    rawCopies: count("Raw MIME copies (SMTP submission) deleted"),
    attempts: count("Delivery attempts whose provider reply was cleared"),
    capturedCopies: count("Captured copies (Capture servers) deleted"),
    auditEntries: count("Earlier audit entries in which the address was replaced"),
    walEmptied: Type.Boolean({ description: "SQLite: the write-ahead log was emptied at once (else at its next checkpoint)" }),
  },
  { $id: "Erasure" },
);

const RouteMatchShape = Type.Object({
  from: nullable(Type.String()),
  token: nullable(Type.String()),
  tag: nullable(Type.String()),
  recipientDomain: nullable(Type.String()),
});

const Route = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    position: Type.Integer(),
    match: RouteMatchShape,
    servers: Type.Array(Named),
    createdAt: Type.String(),
    updatedAt: Type.String(),
  },
  { $id: "Route" },
);

/** "Which route would this message take?" (src/core/routes.ts explain). */
const RouteExplanation = Type.Object(
  {
    route: nullable(Named),
    servers: Type.Array(
      Type.Object({ id: Type.String(), name: Type.String(), status: Type.String(), fromAllowed: Type.Boolean() }),
    ),
    chosen: nullable(Named),
    reason: Type.String(),
  },
  { $id: "RouteExplanation" },
);

const Days = nullable(Type.Integer());
const RetentionPeriods = Type.Object({ bodyDays: Days, metadataDays: Days, auditDays: Days }, { $id: "RetentionPeriods" });

/** GET /api/settings/retention: the periods in force, where they come from, and what retention did. */
const Retention = Type.Object(
  {
    effective: ref("RetentionPeriods"),
    source: oneOf(["environment", "settings"]),
    environment: ref("RetentionPeriods"),
    override: nullable(
      Type.Object({
        bodyDays: Days,
        metadataDays: Days,
        auditDays: Days,
        updatedAt: Type.String(),
        updatedBy: Type.String(),
      }),
    ),
    status: Type.Object({
      databaseBytes: Type.Integer(),
      autoVacuum: oneOf(["incremental", "off"]),
      messages: Type.Object({ full: Type.Integer(), metadataOnly: Type.Integer() }),
      lastPurge: nullable(
        Type.Object({
          startedAt: Type.String(),
          finishedAt: nullable(Type.String()),
          bodies: Type.Integer(),
          messages: Type.Integer(),
          audit: Type.Integer(),
          error: nullable(Type.String()),
        }),
      ),
    }),
  },
  { $id: "Retention" },
);

const alertChannelProperties = {
  id: Type.String(),
  name: Type.String(),
  type: oneOf(["webhook", "slack", "email"]),
  enabled: Type.Boolean(),
  url: nullable(Type.String({ description: "The webhook's URL; null for Slack (write-only) and email" })),
  host: nullable(Type.String({ description: "Where it posts: the URL's host" })),
  secret: Type.Object({ set: Type.Boolean() }, { description: "The signing secret (webhook) or the URL (Slack): never shown" }),
  server: nullable(Named),
  recipients: Type.Array(Type.String()),
  warning: nullable(Type.String({ description: "What keeps it from working as expected, e.g. the only server" })),
  createdAt: Type.String(),
  updatedAt: Type.String(),
};

const AlertChannel = Type.Object(alertChannelProperties, { $id: "AlertChannel" });

/** A channel just created or changed: a new signing secret is in this reply only. */
const NewAlertChannel = Type.Object(
  {
    ...alertChannelProperties,
    signingSecret: Type.Optional(
      Type.String({ description: "Shown once: verify the webhook-signature header with it (Standard Webhooks)" }),
    ),
  },
  { $id: "NewAlertChannel" },
);

const AlertError = Type.Object({ code: Type.String(), message: Type.String(), hint: Type.String() });

const AlertTestResult = Type.Object(
  {
    outcome: oneOf(["delivered", "queued", "failed", "not_sent"]),
    channel: Type.Object({ id: Type.String(), name: Type.String(), type: Type.String() }),
    responseStatus: nullable(Type.Integer()),
    ms: Type.Integer(),
    error: nullable(AlertError),
    message: nullable(Type.Object({ id: Type.String(), server: Type.String() })),
  },
  { $id: "AlertTestResult" },
);

const AlertNotification = Type.Object(
  {
    id: Type.String(),
    event: oneOf(["opened", "resolved"]),
    channel: Type.Object({ id: nullable(Type.String()), name: Type.String(), type: Type.String() }),
    status: oneOf(["pending", "delivered", "queued", "failed", "not_sent"]),
    attempts: Type.Integer(),
    nextAttemptAt: nullable(Type.String()),
    error: nullable(Type.Object({ code: Type.String(), message: Type.String() })),
    responseStatus: nullable(Type.Integer()),
    message: nullable(
      Type.Object({
        id: Type.String(),
        status: nullable(Type.String()),
        error: nullable(Type.String()),
        server: nullable(Type.String()),
      }),
    ),
    at: Type.String(),
  },
  { $id: "AlertNotification" },
);

const AlertIncident = Type.Object(
  {
    id: Type.String(),
    kind: Type.String(),
    subject: nullable(Named),
    title: Type.String(),
    detail: Type.String(),
    values: Type.Record(Type.String(), Type.Unknown()),
    open: Type.Boolean(),
    openedAt: Type.String(),
    resolvedAt: nullable(Type.String()),
    resolution: nullable(Type.String()),
    notifications: Type.Array(ref("AlertNotification")),
  },
  { $id: "AlertIncident" },
);

const Off = nullable(Type.Integer());
const AlertThresholds = Type.Object(
  {
    heldMessages: Off,
    queueAgeMinutes: Off,
    failureRatePercent: Off,
    failureRateWindowMinutes: Type.Integer(),
    failureRateMinMessages: Type.Integer(),
    microsoftIdleWarnDays: Off,
    googleTestingWarnDays: Off,
    clientSecretWarnDays: Type.Array(Type.Integer()),
  },
  { $id: "AlertThresholds" },
);

const AlertSettings = Type.Object(
  {
    thresholds: ref("AlertThresholds"),
    defaults: ref("AlertThresholds"),
    updatedAt: nullable(Type.String()),
    updatedBy: nullable(Type.String()),
  },
  { $id: "AlertSettings" },
);

/** Every response shape, added to the app before its routes so they can refer to them by $id. */
export const responseSchemas = [
  ErrorSchema,
  Address,
  DriverField,
  Driver,
  ServerDelivery,
  EmailServer,
  EmailServerCopy,
  MessageSource,
  Message,
  Attempt,
  MessageWithAttempts,
  CapturedSummary,
  CapturedMessage,
  User,
  NewUser,
  Group,
  Token,
  NewToken,
  AuditEntry,
  StatsRange,
  Stats,
  Info,
  Queued,
  SignedIn,
  Me,
  TestStep,
  TestReport,
  ServerChecked,
  AuthorizationStart,
  Disconnected,
  SmtpSubmission,
  AuditFilters,
  CapturedDeleted,
  Erasure,
  Route,
  RouteExplanation,
  RetentionPeriods,
  Retention,
  ...webhookSchemas,
  AlertChannel,
  NewAlertChannel,
  AlertTestResult,
  AlertNotification,
  AlertIncident,
  AlertThresholds,
  AlertSettings,
];

/** A route's replies: its success shape, and the error body of every failure. */
export const replies = (status: number, schema: TSchema) => ({
  [status]: schema,
  "4xx": ref("Error"),
  "5xx": ref("Error"),
});
