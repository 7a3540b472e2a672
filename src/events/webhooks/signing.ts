/**
 * Standard Webhooks signatures (https://www.standardwebhooks.com): a secret `whsec_<base64>`
 * whose decoded bytes key an HMAC-SHA256 over `<webhook-id>.<webhook-timestamp>.<body>`, sent
 * as `webhook-signature: v1,<base64>` (several, space-separated, while a rotated secret still
 * signs). docs/events.md shows a receiver checking it.
 */
import { createHmac, randomBytes } from "node:crypto";

const PREFIX = "whsec_";

/** A new signing secret: 32 random bytes. Shown once, stored encrypted. */
export function newWebhookSecret(): string {
  return `${PREFIX}${randomBytes(32).toString("base64")}`;
}

function keyOf(secret: string): Buffer {
  return Buffer.from(secret.startsWith(PREFIX) ? secret.slice(PREFIX.length) : secret, "base64");
}

/** `v1,<base64 HMAC-SHA256>` of one message under one secret. */
export function signature(secret: string, id: string, timestamp: number, body: string): string {
  const mac = createHmac("sha256", keyOf(secret)).update(`${id}.${timestamp}.${body}`).digest("base64");
  return `v1,${mac}`;
}

/** The three headers of a Standard Webhooks request; `secrets` newest first. */
export function signedHeaders(secrets: string[], id: string, timestamp: number, body: string): Record<string, string> {
  return {
    "webhook-id": id,
    "webhook-timestamp": String(timestamp),
    "webhook-signature": secrets.map((s) => signature(s, id, timestamp, body)).join(" "),
  };
}
