import { sql } from "kysely";
import type { Logger } from "pino";
import { SessionStore } from "./auth/sessions.js";
import { TokenService } from "./auth/tokens.js";
import { UserService } from "./auth/users.js";
import type { Config } from "./config.js";
import { systemActor } from "./core/audit.js";
import type { AppContext } from "./core/context.js";
import { EmailServerService } from "./core/email-servers.js";
import { ignoreMessageEvents } from "./core/message-events.js";
import { MessageService } from "./core/messages.js";
import { Retention } from "./core/retention.js";
import { RetentionPolicy } from "./core/retention-policy.js";
import { RouteService } from "./core/routes.js";
import { secretFieldKeys } from "./drivers/registry.js";
import { AlertService } from "./events/alerts/service.js";
import { ProviderEventReceiver } from "./events/provider-events/receiver.js";
import { SuppressionService } from "./events/suppressions.js";
import { createWebhooks, type Webhooks } from "./events/webhooks/index.js";
import { SmtpIntake } from "./intake/smtp/server.js";
import type { Clock } from "./kernel/clock.js";
import { createLogger } from "./logger.js";
import { Metrics } from "./metrics.js";
import { OAuthService } from "./oauth/service.js";
import { Breakers } from "./queue/breaker.js";
import { ServerProber } from "./queue/prober.js";
import { TransportCache } from "./queue/transports.js";
import { DeliveryWorker } from "./queue/worker.js";
import { migrateToLatest, openStorage } from "./storage/db.js";
import { GroupCommit } from "./storage/group-commit.js";
import { QueueSignal } from "./storage/queue-signal.js";
import { loadSecretBox } from "./storage/secrets.js";

/** Everything a running Mailroom holds: the context and one instance of each service. */
export interface Mailroom {
  ctx: AppContext;
  servers: EmailServerService;
  /** OAuth: authorize, callback, disconnect, and the access tokens of Gmail and Microsoft 365 servers. */
  oauth: OAuthService;
  users: UserService;
  sessions: SessionStore;
  tokens: TokenService;
  messages: MessageService;
  /** Route rules: which servers a message goes through, in order. */
  routes: RouteService;
  /** One transport per email server, shared by the worker and the test endpoint. */
  transports: TransportCache;
  /** Delivers queued messages; started by `serve` (or a test) with worker.start(), which starts the prober too. */
  worker: DeliveryWorker;
  /** Each server's circuit breaker (server problems in a row, probes). */
  breakers: Breakers;
  /** Probes failing servers on their schedule, and at once after an edit or "Check now". */
  prober: ServerProber;
  metrics: Metrics;
  /** SMTP submission; started by `serve` (or a test) with smtp.start(). */
  smtp: SmtpIntake;
  /** Wakes the workers of other processes on the same PostgreSQL when messages are queued; `serve` listens. */
  queueSignal: QueueSignal;
  /** Purges by the retention periods; started by `serve` (or a test) with retention.start(). */
  retention: Retention;
  /** Addresses refused at accept time (hard bounces, complaints, added by hand). */
  suppressions: SuppressionService;
  /** Mailgun's, Postmark's and SES's reports of delivery, bounces and complaints, and each server's sources of them. */
  providerEvents: ProviderEventReceiver;
  /** Application webhooks: the event sink (ctx.messageEvents), the dispatcher (`serve` starts it), the service. */
  webhooks: Webhooks;
  /** Admin alerts: channels, thresholds, incidents; evaluated by `serve` (alerts.start()) and on breaker transitions. */
  alerts: AlertService;
  /** Stops SMTP submission and the worker (giving back what it holds), closes transports and the database. */
  close(): Promise<void>;
}

/** Webhook posts under way at once per process: receivers are slow far more often than busy. */
const WEBHOOK_CONCURRENCY = 8;

export interface MailroomOptions {
  /** What "now" is for every service (default Date.now): tests move time instead of sleeping. */
  clock?: Clock;
}

export function createMailroom(
  config: Config,
  log: Logger = createLogger(config.logLevel, secretFieldKeys),
  { clock = Date.now }: MailroomOptions = {},
): Mailroom {
  const storage = openStorage({
    dataDir: config.dataDir,
    databaseUrl: config.databaseUrl,
    busyTimeoutMs: config.sqliteBusyMs,
    log,
    clock,
  });
  const secrets = loadSecretBox(config.dataDir, config.secretKey);
  const ctx: AppContext = {
    config,
    storage,
    db: storage.db,
    secrets,
    log,
    commits: new GroupCommit(storage.db),
    clock,
    messageEvents: ignoreMessageEvents,
  };
  // Every message status change is told to the webhooks (src/core/message-events.ts).
  const webhooks = createWebhooks(ctx, { concurrency: WEBHOOK_CONCURRENCY, pollMs: config.delivery.pollMs });
  ctx.messageEvents = webhooks.registry;
  const servers = new EmailServerService(ctx);
  const retention = new Retention(ctx, new RetentionPolicy(ctx), config.retention);
  const metrics = new Metrics(ctx, retention);
  const oauth = new OAuthService(ctx, servers, {
    onRefresh: (serverId, result) => metrics.tokenRefreshes.inc({ server_id: serverId, result }),
  });
  const routes = new RouteService(ctx);
  const messages = new MessageService(ctx, servers, { maxAttempts: config.delivery.maxAttempts }, routes);
  const suppressions = new SuppressionService(ctx, servers);
  messages.suppressions = suppressions.lookup;
  const providerEvents = new ProviderEventReceiver(ctx, suppressions);
  const transports = new TransportCache(ctx, servers, config.delivery.poolSize);
  transports.tokenProviders = (serverId) => oauth.tokenProvider(serverId);
  transports.appTokenProviders = (row, secrets, oneOff) => oauth.appTokenProvider(row, secrets, oneOff);
  const breakers = new Breakers(
    ctx,
    servers,
    {
      threshold: config.delivery.breakerThreshold,
      probeScheduleMs: config.delivery.probeSchedule,
      probeLeaseMs: Math.max(config.delivery.leaseMs, 120_000),
    },
    clock,
  );
  const prober = new ServerProber(ctx, servers, transports, breakers, { pollMs: config.delivery.pollMs });
  const worker = new DeliveryWorker(ctx, transports, config.delivery, breakers, prober, metrics);
  const queueSignal = new QueueSignal(storage.db, config.databaseUrl, log.child({ component: "queue" }));
  messages.onQueued = (announced) => {
    worker.wake();
    if (!announced) queueSignal.announce();
  };
  messages.announcement = () => queueSignal.notification();
  const users = new UserService(storage.db);
  servers.onGrantDropped = (serverId) => oauth.tokens.forget(serverId);
  const tokens = new TokenService(storage.db, users, storage.configCache);
  // A revoked token's webhooks fall silent at once in this process (other processes: within a refresh).
  tokens.onRevoked = () => void webhooks.registry.refresh().catch(() => {});
  const smtp = new SmtpIntake({ config, messages, servers, tokens, metrics, log: log.child({ component: "smtp" }), clock });
  servers.onProbeWanted = () => prober.wake();
  prober.onReleased = () => {
    worker.wake();
    queueSignal.announce();
  };
  const alerts = new AlertService(ctx, messages);
  // A server turning failing or back, or losing its grant, is looked at now, not at the next tick.
  breakers.onTransition = () => alerts.nudge();
  servers.onFaultChanged = () => alerts.nudge();
  return {
    ctx,
    servers,
    oauth,
    users,
    sessions: new SessionStore(storage.db),
    tokens,
    messages,
    routes,
    transports,
    worker,
    breakers,
    prober,
    metrics,
    smtp,
    queueSignal,
    retention,
    suppressions,
    providerEvents,
    webhooks,
    alerts,
    async close() {
      // No new message may arrive while the rest shuts down.
      await smtp.stop();
      await queueSignal.stop();
      await retention.stop();
      await alerts.stop();
      await worker.stop();
      webhooks.registry.stop();
      await webhooks.dispatcher.stop();
      await transports.closeAll();
      await storage.close();
    },
  };
}

export interface BootstrapResult {
  migrations: string[];
  /** Set when this start created the first admin. The password is shown once, only if generated. */
  admin?: { email: string; generatedPassword: string | null };
  createdCaptureServer: boolean;
}

/**
 * First-start work, idempotent: the schema, a first super admin if there is no user,
 * and a Capture server as the default if there is no server.
 */
export async function bootstrap(mailroom: Mailroom): Promise<BootstrapResult> {
  const migrations = await migrateToLatest(mailroom.ctx.db);
  // Read before the first message is accepted, so telling of it needs no read of its own.
  await mailroom.webhooks.registry.refresh();
  const result: BootstrapResult = { migrations, createdCaptureServer: false };
  await withStartLock(mailroom, async () => {
    const { config } = mailroom.ctx;
    if ((await mailroom.users.count()) === 0) {
      const email = config.adminEmail ?? "admin@mailroom.localhost";
      // Without MAILROOM_ADMIN_PASSWORD the password is generated, and so one-time.
      const { generatedPassword } = await mailroom.users.create(
        { email, name: "Administrator", password: config.adminPassword, superAdmin: true },
        systemActor,
      );
      result.admin = { email, generatedPassword };
    }
    if ((await mailroom.servers.list({ limit: 1 })).total === 0) {
      await mailroom.servers.create(
        { name: "Capture", driver: "capture", fromAddress: "noreply@mailroom.localhost", fromName: "Mailroom", isDefault: true },
        systemActor,
      );
      result.createdCaptureServer = true;
    }
  });
  return result;
}

/**
 * Several processes starting at once on one PostgreSQL database take turns here, so only
 * the first creates the admin and the Capture server. (On SQLite one process owns the file.)
 */
async function withStartLock(mailroom: Mailroom, fn: () => Promise<void>): Promise<void> {
  if (mailroom.ctx.storage.dialect !== "postgres") return fn();
  await mailroom.ctx.db.connection().execute(async (conn) => {
    await sql`select pg_advisory_lock(hashtext('mailroom-bootstrap'))`.execute(conn);
    try {
      await fn();
    } finally {
      await sql`select pg_advisory_unlock(hashtext('mailroom-bootstrap'))`.execute(conn);
    }
  });
}
