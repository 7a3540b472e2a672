import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import type { AllowedEndpoint, OperatorPolicy, SendmailCommand } from "./kernel/operator-policy.js";
import { hasControlCharacters, isEmailAddress, isHost } from "./kernel/validate.js";
import { parseAllowedEndpoint } from "./transport/operator.js";

export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";

export interface OAuthEndpointOverrides {
  googleAuthUrl?: string;
  googleTokenUrl?: string;
  googleRevokeUrl?: string;
  googleUserinfoUrl?: string;
  /** The issuer ID tokens name when Google's endpoints are overridden by another issuer (not a proxy). */
  googleIssuer?: string;
  microsoftAuthority?: string;
}

export interface DeliveryConfig {
  /** Run delivery workers in this process (off: accept and queue only). */
  enabled: boolean;
  concurrency: number;
  /** Connections kept open per pooled server. */
  poolSize: number;
  maxAttempts: number;
  leaseMs: number;
  pollMs: number;
  /** Waits between attempts, in ms. */
  backoff: number[];
  /** Server-problem results in a row that open a server's circuit breaker (it turns failing). */
  breakerThreshold: number;
  /** Waits before each probe of a failing server, in ms; the last one repeats. */
  probeSchedule: number[];
}

/** SMTP submission (src/intake/smtp): where it listens, its certificate and its limits. */
export interface SmtpIntakeConfig {
  /** Plain port with STARTTLS (MAILROOM_SMTP_PORT); null when off. */
  port: number | null;
  /** Implicit TLS port (MAILROOM_SMTPS_PORT); null when off. */
  tlsPort: number | null;
  /** PEM files; both unset: a self-signed certificate in the data folder. */
  certFile?: string;
  keyFile?: string;
  /** Largest message in bytes (advertised as SIZE). */
  maxSize: number;
  maxRecipients: number;
  maxConnectionsPerIp: number;
  idleTimeoutMs: number;
  /** Failed logins one IP may make in 15 minutes before AUTH is refused to it. */
  maxAuthFailures: number;
  /** Offer AUTH on connections that are neither TLS nor from loopback (MAILROOM_SMTP_INSECURE_AUTH). */
  insecureAuth: boolean;
}

/** Retention (src/core/retention.ts): the environment's periods, which the UI's settings may override. */
export interface RetentionPeriods {
  /** Days after it finished (sent or failed) that a message keeps its body; null: until its metadata goes. */
  bodyDays: number | null;
  /** Days after it finished that a message is kept at all; null: for ever. */
  metadataDays: number | null;
  /** Days an audit entry is kept; null: for ever. */
  auditDays: number | null;
}

export interface RetentionConfig extends RetentionPeriods {
  /** How often a purge runs (MAILROOM_RETENTION_INTERVAL_SECONDS). */
  intervalMs: number;
  /** Rows per short transaction (MAILROOM_RETENTION_BATCH). */
  batchSize: number;
}

export const MAX_RETENTION_DAYS = 36_500;

export interface Config {
  port: number;
  host: string;
  publicUrl: string;
  dataDir: string;
  databaseUrl?: string;
  /** PEM of certificate authorities SMTP servers may be signed by, besides the system's (MAILROOM_EXTRA_CA_FILE). */
  extraCa?: string;
  /** How long an SQLite write waits for another writer (the CLI, say) before answering 503. */
  sqliteBusyMs: number;
  secretKey?: string;
  adminEmail?: string;
  adminPassword?: string;
  logLevel: LogLevel;
  /**
   * Which proxies' X-Forwarded-For Mailroom believes (MAILROOM_TRUST_PROXY): false (none,
   * the default), a hop count, or their addresses and CIDR ranges. Passed to Fastify's trustProxy.
   */
  trustProxy: false | number | string[];
  oauth: OAuthEndpointOverrides;
  delivery: DeliveryConfig;
  /** What only the operator decides: sendmail commands, endpoints beyond the providers' own. */
  operator: OperatorPolicy;
  smtp: SmtpIntakeConfig;
  retention: RetentionConfig;
}

/** Thrown for a wrong environment value; its message is the one line printed at start. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

const logLevels: LogLevel[] = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

function parsePort(name: string, raw: string): number {
  if (!/^\d+$/.test(raw) || Number(raw) > 65535) {
    throw new ConfigError(`${name}=${raw} is not a port: use a whole number from 0 to 65535.`);
  }
  return Number(raw);
}

/** A URL as an error message may show it: a password in it (DATABASE_URL) is masked. */
function shownUrl(raw: string): string {
  return raw.replace(/\/\/([^/@:]*):[^/@]*@/, "//$1:***@");
}

function parseUrl(name: string, raw: string, protocols: string[]): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`${name}=${shownUrl(raw)} is not a URL: use e.g. ${protocols[0]}//host:port.`);
  }
  if (!protocols.includes(url.protocol)) {
    throw new ConfigError(`${name}=${shownUrl(raw)} must start with ${protocols.map((p) => `${p}//`).join(" or ")}.`);
  }
  return raw.replace(/\/+$/, "");
}

/** Each comma-separated key must be base64 of 32 bytes. The value is never shown: it is a secret. */
function parseSecretKeys(raw: string): string {
  const keys = raw.split(",").map((k) => k.trim());
  keys.forEach((key, index) => {
    if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(key) || Buffer.from(key, "base64").length !== 32) {
      const which = keys.length > 1 ? ` (key ${index + 1} of ${keys.length})` : "";
      throw new ConfigError(
        `MAILROOM_SECRET_KEY${which} is not a key: use base64 of 32 random bytes, e.g. from 'openssl rand -base64 32' (several: comma-separated, newest first).`,
      );
    }
  });
  return keys.join(",");
}

function readCaFile(file: string | undefined): string | undefined {
  if (!file) return undefined;
  let pem: string;
  try {
    pem = fs.readFileSync(file, "utf8");
  } catch {
    throw new ConfigError(`MAILROOM_EXTRA_CA_FILE=${file} cannot be read: give the path of a PEM file of CA certificates.`);
  }
  if (!pem.includes("-----BEGIN CERTIFICATE-----")) {
    throw new ConfigError(`MAILROOM_EXTRA_CA_FILE=${file} holds no PEM certificate ("-----BEGIN CERTIFICATE-----").`);
  }
  return pem;
}

function parseCount(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw new ConfigError(`${name}=${raw} is not valid: use a whole number from ${min} to ${max}.`);
  }
  return Number(raw);
}

/** Seconds separated by commas (decimals allowed), as milliseconds. */
function parseSchedule(env: NodeJS.ProcessEnv, name: string, fallbackSeconds: number[]): number[] {
  const raw = env[name];
  if (!raw) return fallbackSeconds.map((s) => s * 1000);
  const parts = raw.split(",").map((p) => p.trim());
  if (parts.some((p) => !/^\d+(\.\d+)?$/.test(p))) {
    throw new ConfigError(`${name}=${raw} is not valid: use seconds separated by commas, e.g. ${fallbackSeconds.join(",")}.`);
  }
  return parts.map((p) => Math.round(Number(p) * 1000));
}

function parseDelivery(env: NodeJS.ProcessEnv): DeliveryConfig {
  const workers = env.MAILROOM_WORKERS || "on";
  if (workers !== "on" && workers !== "off") throw new ConfigError(`MAILROOM_WORKERS=${workers} is not valid: use on or off.`);
  const backoff = parseSchedule(env, "MAILROOM_RETRY_SCHEDULE", [60, 300, 1800, 7200, 21600]);
  return {
    enabled: workers === "on",
    concurrency: parseCount(env, "MAILROOM_WORKER_CONCURRENCY", 32, 1, 1000),
    poolSize: parseCount(env, "MAILROOM_POOL_SIZE", 5, 1, 100),
    maxAttempts: parseCount(env, "MAILROOM_MAX_ATTEMPTS", 6, 1, 100),
    leaseMs: parseCount(env, "MAILROOM_LEASE_SECONDS", 120, 1, 3600) * 1000,
    pollMs: parseCount(env, "MAILROOM_POLL_MS", 1000, 10, 60_000),
    backoff,
    breakerThreshold: parseCount(env, "MAILROOM_BREAKER_THRESHOLD", 3, 1, 1000),
    probeSchedule: parseSchedule(env, "MAILROOM_PROBE_SCHEDULE", [30, 60, 120, 300, 600, 900]),
  };
}

// proxy-addr's names for whole ranges, which Fastify accepts beside addresses.
const proxyRangeNames = ["loopback", "linklocal", "uniquelocal"];

function isProxyAddress(entry: string): boolean {
  if (proxyRangeNames.includes(entry)) return true;
  const [address, prefix, ...rest] = entry.split("/");
  const version = net.isIP(address);
  if (!version || rest.length) return false;
  if (prefix === undefined) return true;
  return /^\d+$/.test(prefix) && Number(prefix) <= (version === 4 ? 32 : 128);
}

function parseTrustProxy(raw: string | undefined): false | number | string[] {
  const value = raw?.trim();
  if (!value || value === "false" || value === "0") return false;
  const help =
    "use the number of proxies in front of Mailroom (e.g. 1), or their addresses and CIDR ranges separated by commas (e.g. 10.0.0.0/8,192.168.1.5)";
  if (/^\d+$/.test(value)) {
    if (Number(value) < 1 || Number(value) > 20) throw new ConfigError(`MAILROOM_TRUST_PROXY=${value} is not valid: ${help}.`);
    return Number(value);
  }
  if (value === "true") {
    throw new ConfigError(`MAILROOM_TRUST_PROXY=true would let any client choose its own address (X-Forwarded-For): ${help}.`);
  }
  const entries = value.split(",").map((e) => e.trim());
  const bad = entries.find((e) => !isProxyAddress(e));
  if (bad !== undefined) throw new ConfigError(`MAILROOM_TRUST_PROXY: '${bad}' is not an address or CIDR range: ${help}.`);
  return entries;
}

/** The sendmail shipped by the system, offered by default when it exists. */
const SYSTEM_SENDMAIL = "/usr/sbin/sendmail";

/**
 * MAILROOM_SENDMAIL_COMMANDS: a JSON object of name → [absolute program, ...arguments], e.g.
 * {"postfix": ["/usr/sbin/sendmail", "-i"]}. Unset: "sendmail" runs /usr/sbin/sendmail -i
 * when that file exists. "{}" declares none (the sendmail driver then cannot send).
 */
function parseSendmailCommands(raw: string | undefined, exists: (file: string) => boolean): Record<string, SendmailCommand> {
  if (raw === undefined || raw.trim() === "") {
    return exists(SYSTEM_SENDMAIL) ? { sendmail: { program: SYSTEM_SENDMAIL, args: ["-i"] } } : {};
  }
  const usage =
    'use a JSON object of name to [absolute program path, arguments...], e.g. {"postfix": ["/usr/sbin/sendmail", "-i"]}';
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new ConfigError(`MAILROOM_SENDMAIL_COMMANDS is not valid JSON: ${usage}.`);
  }
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new ConfigError(`MAILROOM_SENDMAIL_COMMANDS is not a JSON object: ${usage}.`);
  }
  const commands: Record<string, SendmailCommand> = {};
  for (const [name, value] of Object.entries(parsed)) {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name)) {
      throw new ConfigError(
        `MAILROOM_SENDMAIL_COMMANDS: the name '${name}' is not valid: use letters, digits, '.', '_' or '-' (at most 64).`,
      );
    }
    const valid =
      Array.isArray(value) &&
      value.length > 0 &&
      value.every((part) => typeof part === "string" && part !== "" && !hasControlCharacters(part));
    if (!valid || !path.isAbsolute(value[0])) {
      throw new ConfigError(`MAILROOM_SENDMAIL_COMMANDS: '${name}' must be [absolute program path, arguments...]: ${usage}.`);
    }
    commands[name] = { program: value[0], args: value.slice(1) };
  }
  return commands;
}

/** MAILROOM_ALLOWED_ENDPOINTS: comma-separated origins (https://host:port), host:port, or hosts. */
function parseAllowedEndpoints(raw: string | undefined): AllowedEndpoint[] {
  if (!raw) return [];
  return raw
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "")
    .map((entry) => {
      const parsed = parseAllowedEndpoint(entry);
      if (!parsed) {
        throw new ConfigError(
          `MAILROOM_ALLOWED_ENDPOINTS: '${entry}' is not valid: use comma-separated origins (https://host:port, no path), host:port, or host names.`,
        );
      }
      return parsed;
    });
}

/** A port, or null for `off`; unset gives `fallback`. */
function parseOptionalPort(env: NodeJS.ProcessEnv, name: string, fallback: number | null): number | null {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  if (raw === "off") return null;
  if (!/^\d+$/.test(raw) || Number(raw) > 65535) {
    throw new ConfigError(`${name}=${raw} is not a port: use a whole number from 0 to 65535, or off.`);
  }
  return Number(raw);
}

const SIZE_UNITS: Record<string, number> = { "": 1, B: 1, K: 1024, KB: 1024, M: 1024 ** 2, MB: 1024 ** 2 };

function parseSize(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const match = /^(\d+)\s*([A-Za-z]*)$/.exec(raw.trim());
  const unit = SIZE_UNITS[(match?.[2] ?? "").toUpperCase()];
  const bytes = match && unit ? Number(match[1]) * unit : Number.NaN;
  if (!(bytes >= 1024 && bytes <= 1024 ** 3)) {
    throw new ConfigError(`${name}=${raw} is not a size: use bytes or e.g. 25MB, from 1KB to 1024MB.`);
  }
  return bytes;
}

function readableFile(name: string, file: string | undefined, marker: string): string | undefined {
  if (!file) return undefined;
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch {
    throw new ConfigError(`${name}=${file} cannot be read: give the path of a PEM file Mailroom may read.`);
  }
  if (!text.includes(marker)) throw new ConfigError(`${name}=${file} holds no PEM ${marker.replace(/-/g, "").trim()}.`);
  return path.resolve(file);
}

function parseSmtpIntake(env: NodeJS.ProcessEnv): SmtpIntakeConfig {
  const certFile = readableFile("MAILROOM_SMTP_TLS_CERT", env.MAILROOM_SMTP_TLS_CERT, "-----BEGIN CERTIFICATE-----");
  // Any PEM private key: "BEGIN PRIVATE KEY", "BEGIN RSA PRIVATE KEY", "BEGIN EC PRIVATE KEY".
  const keyFile = readableFile("MAILROOM_SMTP_TLS_KEY", env.MAILROOM_SMTP_TLS_KEY, "PRIVATE KEY-----");
  if (Boolean(certFile) !== Boolean(keyFile)) {
    throw new ConfigError(
      "MAILROOM_SMTP_TLS_CERT and MAILROOM_SMTP_TLS_KEY go together: set both, or neither for a self-signed certificate.",
    );
  }
  const insecure = env.MAILROOM_SMTP_INSECURE_AUTH || "off";
  if (insecure !== "on" && insecure !== "off") {
    throw new ConfigError(`MAILROOM_SMTP_INSECURE_AUTH=${insecure} is not valid: use on or off.`);
  }
  return {
    port: parseOptionalPort(env, "MAILROOM_SMTP_PORT", 2525),
    tlsPort: parseOptionalPort(env, "MAILROOM_SMTPS_PORT", null),
    certFile,
    keyFile,
    maxSize: parseSize(env, "MAILROOM_SMTP_MAX_SIZE", 25 * 1024 * 1024),
    maxRecipients: parseCount(env, "MAILROOM_SMTP_MAX_RECIPIENTS", 100, 1, 500),
    maxConnectionsPerIp: parseCount(env, "MAILROOM_SMTP_MAX_CONNECTIONS_PER_IP", 20, 1, 10_000),
    idleTimeoutMs: parseCount(env, "MAILROOM_SMTP_IDLE_TIMEOUT_SECONDS", 300, 1, 3600) * 1000,
    maxAuthFailures: parseCount(env, "MAILROOM_SMTP_AUTH_FAILURES", 10, 1, 10_000),
    insecureAuth: insecure === "on",
  };
}

/** Whole days, `off` for kept for ever; unset gives `fallback`. */
function parseDays(env: NodeJS.ProcessEnv, name: string, fallback: number | null): number | null {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === "") return fallback;
  if (raw === "off") return null;
  if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > MAX_RETENTION_DAYS) {
    throw new ConfigError(
      `${name}=${raw} is not valid: use whole days from 1 to ${MAX_RETENTION_DAYS}, or off to keep for ever.`,
    );
  }
  return Number(raw);
}

/** Why the periods contradict each other, or null: a body cannot outlive its message. */
export function retentionConflict(periods: RetentionPeriods): string | null {
  const { bodyDays, metadataDays } = periods;
  if (metadataDays !== null && bodyDays !== null && bodyDays > metadataDays) {
    return `bodies (${bodyDays} days) cannot be kept longer than their messages (${metadataDays} days)`;
  }
  return null;
}

function parseRetention(env: NodeJS.ProcessEnv): RetentionConfig {
  const periods: RetentionPeriods = {
    bodyDays: parseDays(env, "MAILROOM_RETENTION_BODY_DAYS", 30),
    metadataDays: parseDays(env, "MAILROOM_RETENTION_METADATA_DAYS", 365),
    auditDays: parseDays(env, "MAILROOM_RETENTION_AUDIT_DAYS", null),
  };
  const conflict = retentionConflict(periods);
  if (conflict) {
    throw new ConfigError(
      `MAILROOM_RETENTION_BODY_DAYS is longer than MAILROOM_RETENTION_METADATA_DAYS: ${conflict}; use at most ${periods.metadataDays}.`,
    );
  }
  return {
    ...periods,
    intervalMs: parseCount(env, "MAILROOM_RETENTION_INTERVAL_SECONDS", 600, 1, 86_400) * 1000,
    batchSize: parseCount(env, "MAILROOM_RETENTION_BATCH", 500, 1, 10_000),
  };
}

/** Reads and validates the environment. `overrides` are the CLI's flags, which win. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<Config> = {}): Config {
  const port = overrides.port ?? (env.MAILROOM_PORT ? parsePort("MAILROOM_PORT", env.MAILROOM_PORT) : 8025);
  const host = overrides.host ?? (env.MAILROOM_HOST || "127.0.0.1");
  if (!isHost(host)) {
    throw new ConfigError(`MAILROOM_HOST=${host} is not a host: use an IP address such as 127.0.0.1 or 0.0.0.0, or a host name.`);
  }
  const publicUrl =
    overrides.publicUrl ??
    (env.MAILROOM_PUBLIC_URL
      ? parseUrl("MAILROOM_PUBLIC_URL", env.MAILROOM_PUBLIC_URL, ["http:", "https:"])
      : `http://localhost:${port}`);
  // An empty variable counts as unset, as for every other variable here.
  const logLevel = (overrides.logLevel ?? (env.MAILROOM_LOG_LEVEL || "info")) as LogLevel;
  if (!logLevels.includes(logLevel)) {
    throw new ConfigError(`MAILROOM_LOG_LEVEL=${logLevel} is not a level: use one of ${logLevels.join(", ")}.`);
  }
  const databaseUrl =
    overrides.databaseUrl ??
    (env.DATABASE_URL ? parseUrl("DATABASE_URL", env.DATABASE_URL, ["postgres:", "postgresql:"]) : undefined);
  const secretKey = overrides.secretKey ?? (env.MAILROOM_SECRET_KEY ? parseSecretKeys(env.MAILROOM_SECRET_KEY) : undefined);
  const adminEmail = overrides.adminEmail ?? (env.MAILROOM_ADMIN_EMAIL || undefined);
  // The same check the user is created with, so a start never fails later on it.
  if (adminEmail !== undefined && !isEmailAddress(adminEmail)) {
    throw new ConfigError(`MAILROOM_ADMIN_EMAIL=${adminEmail} is not an email address: use e.g. admin@example.com.`);
  }
  const adminPassword = overrides.adminPassword ?? (env.MAILROOM_ADMIN_PASSWORD || undefined);
  if (adminPassword !== undefined && adminPassword.length < 12) {
    throw new ConfigError("MAILROOM_ADMIN_PASSWORD is too short: use at least 12 characters.");
  }
  const optionalUrl = (name: string) => (env[name] ? parseUrl(name, env[name] as string, ["http:", "https:"]) : undefined);
  return {
    port,
    host,
    publicUrl,
    dataDir: path.resolve(overrides.dataDir ?? env.MAILROOM_DATA_DIR ?? "./data"),
    databaseUrl,
    sqliteBusyMs: parseCount(env, "MAILROOM_SQLITE_BUSY_MS", 5000, 0, 600_000),
    extraCa: readCaFile(env.MAILROOM_EXTRA_CA_FILE),
    secretKey,
    adminEmail,
    adminPassword,
    logLevel,
    trustProxy: overrides.trustProxy ?? parseTrustProxy(env.MAILROOM_TRUST_PROXY),
    oauth: {
      googleAuthUrl: optionalUrl("MAILROOM_GOOGLE_AUTH_URL"),
      googleTokenUrl: optionalUrl("MAILROOM_GOOGLE_TOKEN_URL"),
      googleRevokeUrl: optionalUrl("MAILROOM_GOOGLE_REVOKE_URL"),
      googleUserinfoUrl: optionalUrl("MAILROOM_GOOGLE_USERINFO_URL"),
      googleIssuer: optionalUrl("MAILROOM_GOOGLE_ISSUER"),
      microsoftAuthority: optionalUrl("MAILROOM_MICROSOFT_AUTHORITY"),
    },
    delivery: overrides.delivery ?? parseDelivery(env),
    operator: overrides.operator ?? {
      sendmailCommands: parseSendmailCommands(env.MAILROOM_SENDMAIL_COMMANDS, fs.existsSync),
      allowedEndpoints: parseAllowedEndpoints(env.MAILROOM_ALLOWED_ENDPOINTS),
      apiUrls: {
        microsoftGraph: optionalUrl("MAILROOM_MICROSOFT_GRAPH_URL"),
        googleGmail: optionalUrl("MAILROOM_GOOGLE_GMAIL_API_URL"),
      },
    },
    smtp: overrides.smtp ?? parseSmtpIntake(env),
    retention: overrides.retention ?? parseRetention(env),
  };
}
