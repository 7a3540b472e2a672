import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/**
 * Signatures for what Mailroom posts to other people's URLs (admin alert webhooks and
 * application webhooks), in the Standard Webhooks scheme (https://www.standardwebhooks.com/)
 * so receivers can use its libraries:
 *
 *   webhook-id:        a unique id of the message (the same on every retry of it)
 *   webhook-timestamp: seconds since the epoch when it was sent (receivers refuse old ones)
 *   webhook-signature: "v1,<base64 HMAC-SHA256 over `${id}.${timestamp}.${body}`>"
 *
 * The secret is "whsec_" followed by the base64 of 32 random bytes; the HMAC key is those
 * bytes (what the Standard Webhooks libraries expect).
 */

const SECRET_PREFIX = "whsec_";

/** A new signing secret: shown once to the admin, stored encrypted. */
export function generateSigningSecret(): string {
  return SECRET_PREFIX + randomBytes(32).toString("base64");
}

function secretKey(secret: string): Buffer {
  return Buffer.from(secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret, "base64");
}

export interface SignedHeaders {
  "webhook-id": string;
  "webhook-timestamp": string;
  "webhook-signature": string;
}

/** The signature value ("v1,<base64>") of one message. `timestampSeconds` is whole seconds. */
export function computeSignature(secret: string, id: string, timestampSeconds: number, body: string): string {
  const mac = createHmac("sha256", secretKey(secret)).update(`${id}.${timestampSeconds}.${body}`).digest("base64");
  return `v1,${mac}`;
}

/** The three headers to send with `body` (the exact bytes posted). */
export function signWebhook(secret: string, id: string, timestampSeconds: number, body: string): SignedHeaders {
  return {
    "webhook-id": id,
    "webhook-timestamp": String(timestampSeconds),
    "webhook-signature": computeSignature(secret, id, timestampSeconds, body),
  };
}

/** The headers when several secrets sign (a rotated webhook secret beside its successor), newest first. */
export function signWithEach(secrets: string[], id: string, timestampSeconds: number, body: string): SignedHeaders {
  return {
    "webhook-id": id,
    "webhook-timestamp": String(timestampSeconds),
    "webhook-signature": secrets.map((s) => computeSignature(s, id, timestampSeconds, body)).join(" "),
  };
}

/**
 * Checks a received message as a receiver would: one of the space-separated signatures
 * matches, and the timestamp is within `toleranceSeconds` of `nowSeconds` (replay window).
 * Used by the tests and by anyone verifying in Node.
 */
export function verifyWebhook(
  secret: string,
  headers: Record<string, string | string[] | undefined>,
  body: string,
  nowSeconds: number,
  toleranceSeconds = 300,
): boolean {
  const id = single(headers["webhook-id"]);
  const timestamp = single(headers["webhook-timestamp"]);
  const signatures = single(headers["webhook-signature"]);
  if (!id || !timestamp || !signatures || !/^\d+$/.test(timestamp)) return false;
  const ts = Number(timestamp);
  if (Math.abs(nowSeconds - ts) > toleranceSeconds) return false;
  const expected = Buffer.from(computeSignature(secret, id, ts, body));
  return signatures.split(" ").some((candidate) => {
    const given = Buffer.from(candidate);
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
