/**
 * Amazon SNS messages over HTTP(S) (docs.aws.amazon.com/sns, "Verifying the signatures of
 * Amazon SNS messages"): a JSON body, sent as text/plain. Each is signed with the private key
 * of a certificate SNS publishes at SigningCertURL: SignatureVersion 1 is SHA1withRSA, 2 is
 * SHA256withRSA, over "Name\nvalue\n" of the message's fields in a fixed order.
 *
 * The certificate is fetched only from https://sns.<region>.amazonaws.com (any other host is
 * refused before a connection is made), unless the operator lists the endpoint in
 * MAILROOM_ALLOWED_ENDPOINTS (tests: a loopback peer); never by an admin's or a sender's word.
 * Certificates are kept (up to 32, a day at most) so a flood of messages fetches each once.
 * A SubscriptionConfirmation is confirmed by fetching its SubscribeURL, under the same rule.
 */
import { createVerify, type KeyObject, X509Certificate } from "node:crypto";
import { MailroomError } from "../../kernel/errors.js";
import type { OperatorPolicy } from "../../kernel/operator-policy.js";
import { checkResolvedHost, isEndpointAllowed, urlPort } from "../../transport/operator.js";
import { invalidPayload, isObject } from "./report.js";

export type SnsMessageType = "Notification" | "SubscriptionConfirmation" | "UnsubscribeConfirmation";

export interface SnsMessage {
  Type: SnsMessageType;
  MessageId: string;
  TopicArn: string;
  Message: string;
  Timestamp: string;
  SignatureVersion: string;
  Signature: string;
  SigningCertURL: string;
  Subject?: string;
  SubscribeURL?: string;
  Token?: string;
}

/** The fields signed, in order, per message type. */
const SIGNED_FIELDS: Record<SnsMessageType, (keyof SnsMessage)[]> = {
  Notification: ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"],
  SubscriptionConfirmation: ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"],
  UnsubscribeConfirmation: ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"],
};

const SNS_HOST = /^sns\.[a-z0-9-]+\.amazonaws\.com$/;
const FETCH_TIMEOUT_MS = 10_000;
const MAX_CERTIFICATE_BYTES = 64 * 1024;
const CACHE_SIZE = 32;
const CACHE_MS = 24 * 60 * 60 * 1000;

/** The SNS message in a body (text/plain, so a string; or already parsed JSON). */
export function parseSnsMessage(body: unknown): SnsMessage {
  let json: unknown = body;
  if (typeof body === "string" || Buffer.isBuffer(body)) {
    try {
      json = JSON.parse(String(body));
    } catch {
      throw invalidPayload("ses", "the body is not an SNS message (JSON)");
    }
  }
  if (!isObject(json) || !["Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation"].includes(String(json.Type))) {
    throw invalidPayload("ses", "the body is not an SNS message (no Type); turn off raw message delivery on the subscription");
  }
  const type = json.Type as SnsMessageType;
  const required = [...SIGNED_FIELDS[type].filter((f) => f !== "Subject"), "SignatureVersion", "Signature", "SigningCertURL"];
  const missing = required.filter((f) => typeof json[f] !== "string");
  if (missing.length || (json.Subject !== undefined && typeof json.Subject !== "string")) {
    throw invalidPayload("ses", `the SNS ${type} lacks ${missing.join(", ") || "a valid Subject"}`);
  }
  return json as unknown as SnsMessage;
}

/** What SNS signed: "Name\nvalue\n" for each field of the type that the message has. */
export function snsStringToSign(message: SnsMessage): string {
  return SIGNED_FIELDS[message.Type]
    .filter((field) => message[field] !== undefined)
    .map((field) => `${field}\n${message[field]}\n`)
    .join("");
}

export class SnsVerifier {
  private readonly certificates = new Map<string, { key: KeyObject; until: number }>();
  private readonly fetching = new Map<string, Promise<KeyObject>>();

  constructor(
    private readonly operator: OperatorPolicy,
    private readonly clock: () => number,
  ) {}

  /** SNS's own address (https://sns.<region>.amazonaws.com), or an endpoint the operator lists; refused otherwise, unfetched. */
  allowedUrl(value: string, what: "SigningCertURL" | "SubscribeURL"): URL {
    let url: URL | null = null;
    try {
      url = new URL(value);
    } catch {}
    const ok =
      url !== null &&
      !url.username &&
      !url.password &&
      ((url.protocol === "https:" && SNS_HOST.test(url.hostname) && urlPort(url) === 443) ||
        isEndpointAllowed(this.operator, { protocol: url.protocol, host: url.hostname, port: urlPort(url) }));
    if (!url || !ok) {
      throw new MailroomError(
        "sns_certificate_refused",
        `The SNS message's ${what} is not on https://sns.<region>.amazonaws.com: refused without fetching it.`,
      );
    }
    return url;
  }

  /** Verifies the message's signature with its certificate; throws the refusal's code. */
  async verify(message: SnsMessage): Promise<void> {
    const algorithm = message.SignatureVersion === "1" ? "RSA-SHA1" : message.SignatureVersion === "2" ? "RSA-SHA256" : null;
    if (!algorithm) {
      throw new MailroomError("provider_event_unauthorized", `SNS SignatureVersion '${message.SignatureVersion}' is not 1 or 2.`);
    }
    const key = await this.certificate(this.allowedUrl(message.SigningCertURL, "SigningCertURL"));
    const valid = createVerify(algorithm).update(snsStringToSign(message), "utf8").verify(key, message.Signature, "base64");
    if (!valid)
      throw new MailroomError("provider_event_unauthorized", "The SNS message's signature does not verify with its certificate.");
  }

  /** Confirms a subscription: a GET of its SubscribeURL (which SNS answers with the subscription's ARN). */
  async confirm(message: SnsMessage): Promise<void> {
    const url = this.allowedUrl(message.SubscribeURL ?? "", "SubscribeURL");
    try {
      const response = await this.get(url);
      if (response.status < 200 || response.status >= 300) throw new Error(`SNS answered ${response.status}`);
      await response.arrayBuffer();
    } catch (error) {
      throw new MailroomError("sns_confirmation_failed", `Confirming the SNS subscription failed: ${(error as Error).message}.`);
    }
  }

  private async certificate(url: URL): Promise<KeyObject> {
    const now = this.clock();
    const cached = this.certificates.get(url.href);
    if (cached && cached.until > now) return cached.key;
    // One fetch per certificate, however many messages arrive while it runs.
    let pending = this.fetching.get(url.href);
    if (!pending) {
      pending = this.fetchCertificate(url).finally(() => this.fetching.delete(url.href));
      this.fetching.set(url.href, pending);
    }
    return pending;
  }

  private async fetchCertificate(url: URL): Promise<KeyObject> {
    let pem: string;
    try {
      const response = await this.get(url);
      if (response.status !== 200) throw new Error(`it answered ${response.status}`);
      const bytes = Buffer.from(await response.arrayBuffer());
      if (bytes.length > MAX_CERTIFICATE_BYTES) throw new Error("it is larger than 64 KB");
      pem = bytes.toString("utf8");
    } catch (error) {
      throw new MailroomError(
        "sns_certificate_unavailable",
        `The SNS signing certificate could not be fetched: ${(error as Error).message}.`,
      );
    }
    let certificate: X509Certificate;
    try {
      certificate = new X509Certificate(pem);
    } catch {
      throw new MailroomError("sns_certificate_unavailable", "The SNS signing certificate is not a PEM certificate.");
    }
    const now = this.clock();
    const validTo = Date.parse(certificate.validTo);
    if (Number.isNaN(validTo) || validTo < now || Date.parse(certificate.validFrom) > now) {
      throw new MailroomError("sns_certificate_unavailable", "The SNS signing certificate is expired or not yet valid.");
    }
    if (this.certificates.size >= CACHE_SIZE) this.certificates.delete(this.certificates.keys().next().value as string);
    this.certificates.set(url.href, { key: certificate.publicKey, until: Math.min(validTo, now + CACHE_MS) });
    return certificate.publicKey;
  }

  /** A GET that goes nowhere else: no redirect is followed, link-local addresses are refused. */
  private async get(url: URL): Promise<Response> {
    await checkResolvedHost(this.operator, { protocol: url.protocol, host: url.hostname, port: urlPort(url) });
    return fetch(url, { redirect: "manual", signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
  }
}
