import pino, { type Logger } from "pino";
import type { LogLevel } from "./config.js";

/**
 * Redaction paths come from the drivers' secret fields (passed in by src/app.ts, so the
 * logger does not load every driver), so a new driver's secret is masked without anyone
 * remembering to add it here.
 */
export function redactionPaths(secretFieldKeys: readonly string[]): string[] {
  const keys = [...secretFieldKeys, "password", "token", "accessToken", "refreshToken", "authorization", "cookie"];
  return keys
    .flatMap((k) => [k, `*.${k}`, `*.*.${k}`, `settings.${k}`, `*.settings.${k}`])
    .concat(["req.headers.authorization", "req.headers.cookie", 'req.headers["x-csrf-token"]', 'res.headers["set-cookie"]']);
}

export function createLogger(level: LogLevel, secretFieldKeys: readonly string[], destination?: pino.DestinationStream): Logger {
  return pino({ level, redact: { paths: redactionPaths(secretFieldKeys), censor: "[redacted]" } }, destination);
}
