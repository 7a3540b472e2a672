import fs from "node:fs";
import path from "node:path";
import { isEmailAddress, isHost } from "./core/validate.js";

export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";

export interface OAuthEndpointOverrides {
  googleAuthUrl?: string;
  googleTokenUrl?: string;
  googleRevokeUrl?: string;
  googleUserinfoUrl?: string;
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
  oauth: OAuthEndpointOverrides;
  delivery: DeliveryConfig;
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
    concurrency: parseCount(env, "MAILROOM_WORKER_CONCURRENCY", 16, 1, 1000),
    poolSize: parseCount(env, "MAILROOM_POOL_SIZE", 5, 1, 100),
    maxAttempts: parseCount(env, "MAILROOM_MAX_ATTEMPTS", 6, 1, 100),
    leaseMs: parseCount(env, "MAILROOM_LEASE_SECONDS", 120, 1, 3600) * 1000,
    pollMs: parseCount(env, "MAILROOM_POLL_MS", 1000, 10, 60_000),
    backoff,
    breakerThreshold: parseCount(env, "MAILROOM_BREAKER_THRESHOLD", 3, 1, 1000),
    probeSchedule: parseSchedule(env, "MAILROOM_PROBE_SCHEDULE", [30, 60, 120, 300, 600, 900]),
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
    oauth: {
      googleAuthUrl: optionalUrl("MAILROOM_GOOGLE_AUTH_URL"),
      googleTokenUrl: optionalUrl("MAILROOM_GOOGLE_TOKEN_URL"),
      googleRevokeUrl: optionalUrl("MAILROOM_GOOGLE_REVOKE_URL"),
      googleUserinfoUrl: optionalUrl("MAILROOM_GOOGLE_USERINFO_URL"),
      microsoftAuthority: optionalUrl("MAILROOM_MICROSOFT_AUTHORITY"),
    },
    delivery: overrides.delivery ?? parseDelivery(env),
  };
}
