/**
 * One POST to a receiver's URL, under the operator's endpoint policy. A webhook URL is typed
 * by an application (an API token), so it gets a narrower door than a provider's host: no
 * loopback, private, link-local, metadata, multicast or unspecified address, unless the
 * operator lists the endpoint in MAILROOM_ALLOWED_ENDPOINTS. The address checked is the one
 * connected to (the check runs inside the connection's DNS lookup), redirects are never
 * followed, and the answer is read only as far as its first few kilobytes.
 */
import { type LookupAddress, lookup } from "node:dns";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import type { OperatorPolicy } from "../../kernel/operator-policy.js";
import { type Destination, isEndpointAllowed, isLinkLocalOrMetadata, urlPort } from "../../transport/operator.js";

/** How long a receiver may take to answer, as Standard Webhooks suggests (real time). */
export const WEBHOOK_TIMEOUT_MS = 10_000;
/** The most of an answer read, and the most kept in an attempt's excerpt. */
const MAX_READ_BYTES = 8192;
const MAX_EXCERPT_CHARS = 500;

const internal = new net.BlockList();
internal.addSubnet("0.0.0.0", 8, "ipv4"); // "this network", 0.0.0.0
internal.addSubnet("10.0.0.0", 8, "ipv4");
internal.addSubnet("100.64.0.0", 10, "ipv4"); // carrier-grade NAT
internal.addSubnet("127.0.0.0", 8, "ipv4");
internal.addSubnet("172.16.0.0", 12, "ipv4");
internal.addSubnet("192.168.0.0", 16, "ipv4");
internal.addSubnet("224.0.0.0", 4, "ipv4"); // multicast
internal.addSubnet("240.0.0.0", 4, "ipv4"); // reserved, broadcast
internal.addAddress("::", "ipv6");
internal.addAddress("::1", "ipv6");
internal.addSubnet("fc00::", 7, "ipv6"); // unique local
internal.addSubnet("ff00::", 8, "ipv6"); // multicast

/** An address only the operator may open to webhooks: internal, loopback, link-local, metadata. */
export function isInternalAddress(address: string): boolean {
  const bare = address
    .replace(/^\[|\]$/g, "")
    .replace(/%.*$/, "")
    .toLowerCase();
  if (isLinkLocalOrMetadata(bare)) return true;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(bare)?.[1];
  if (mapped) return internal.check(mapped, "ipv4");
  const family = net.isIP(bare);
  if (family === 4) return internal.check(bare, "ipv4");
  if (family === 6) return internal.check(bare, "ipv6");
  return false;
}

export class WebhookPostError extends Error {
  constructor(
    /** endpoint_not_allowed, timeout, dns_not_found, connection_refused, network_error. */
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function refusal(to: Destination, address: string): WebhookPostError {
  const via = to.host.replace(/^\[|\]$/g, "") === address ? "" : ` (it resolves to ${address})`;
  return new WebhookPostError(
    "endpoint_not_allowed",
    `${to.host}:${to.port} is an internal address${via}: Mailroom posts webhooks there only if the operator lists it in MAILROOM_ALLOWED_ENDPOINTS.`,
  );
}

/** Throws endpoint_not_allowed when an address is internal and the operator did not list the destination. */
export function assertWebhookAddresses(operator: OperatorPolicy, to: Destination, addresses: string[]): void {
  const bad = addresses.find(isInternalAddress);
  if (bad !== undefined && !isEndpointAllowed(operator, to)) throw refusal(to, bad);
}

/** Why a URL cannot be a webhook's, or null. Host names are checked again, resolved, at each attempt. */
export function webhookUrlProblem(
  value: string,
  operator: OperatorPolicy,
): { code: "validation_failed" | "endpoint_not_allowed"; message: string } | null {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return { code: "validation_failed", message: "must be an absolute http:// or https:// URL" };
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return { code: "validation_failed", message: "must start with http:// or https://" };
  }
  if (url.username || url.password) {
    return { code: "validation_failed", message: "must not hold a user name or password; the signature proves the sender" };
  }
  if (url.hash) return { code: "validation_failed", message: "must not have a #fragment (it is never sent)" };
  const host = url.hostname.replace(/^\[|\]$/g, "").toLowerCase();
  const to = { protocol: url.protocol, host, port: urlPort(url) };
  const literal = net.isIP(host) ? host : host === "localhost" || host.endsWith(".localhost") ? "127.0.0.1" : null;
  if (literal && isInternalAddress(literal) && !isEndpointAllowed(operator, to)) {
    return { code: "endpoint_not_allowed", message: refusal(to, literal).message };
  }
  return null;
}

/** A lookup for the request's socket that refuses internal addresses at connect time. */
function guardedLookup(operator: OperatorPolicy, to: Omit<Destination, "host">): net.LookupFunction {
  return (hostname, options, callback) => {
    lookup(hostname, { ...options, all: true }, (err, addresses) => {
      const answer = callback as (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;
      if (err) return answer(err, options.all ? [] : "");
      try {
        assertWebhookAddresses(
          operator,
          { ...to, host: hostname },
          addresses.map((a) => a.address),
        );
      } catch (refused) {
        return answer(refused as NodeJS.ErrnoException, options.all ? [] : "");
      }
      if (options.all) return answer(null, addresses);
      answer(null, addresses[0].address, addresses[0].family);
    });
  };
}

export interface PostResult {
  status: number;
  /** From Retry-After (seconds or an HTTP date), when the receiver sent one. */
  retryAfterMs?: number;
  /** The start of the answer, every `redact` value replaced. */
  excerpt: string;
}

export interface PostRequest {
  url: string;
  headers: Record<string, string>;
  body: string;
  operator: OperatorPolicy;
  timeoutMs?: number;
  /** Values that must never be kept from the answer (the signing secrets). */
  redact: string[];
}

function retryAfter(value: string | undefined): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

function networkError(error: NodeJS.ErrnoException): WebhookPostError {
  if (error instanceof WebhookPostError) return error;
  switch (error.code) {
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return new WebhookPostError("dns_not_found", `The host name does not resolve (${error.code}).`);
    case "ECONNREFUSED":
      return new WebhookPostError("connection_refused", "The receiver refused the connection (nothing listens on that port).");
    default:
      return new WebhookPostError("network_error", `The connection failed: ${error.message}`);
  }
}

/** Posts the body; resolves with any HTTP answer, rejects with a WebhookPostError when none came. */
export function postWebhook(request: PostRequest): Promise<PostResult> {
  const url = new URL(request.url);
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const to: Destination = { protocol: url.protocol, host, port: urlPort(url) };
  const timeoutMs = request.timeoutMs ?? WEBHOOK_TIMEOUT_MS;
  const client = url.protocol === "https:" ? https : http;
  return new Promise<PostResult>((resolve, reject) => {
    // An address given as such never reaches a lookup: checked here (a throw rejects the promise).
    if (net.isIP(host)) assertWebhookAddresses(request.operator, to, [host]);
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fn();
    };
    const req = client.request(
      url,
      {
        method: "POST",
        // A fresh connection each time: the address it goes to was checked by its own lookup.
        agent: false,
        lookup: guardedLookup(request.operator, { protocol: to.protocol, port: to.port }),
        headers: {
          ...request.headers,
          "content-type": "application/json",
          "content-length": Buffer.byteLength(request.body),
          "user-agent": "Mailroom-Webhooks/1",
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        let read = 0;
        const done = () =>
          finish(() => {
            let excerpt = Buffer.concat(chunks).toString("utf8").slice(0, MAX_EXCERPT_CHARS);
            for (const secret of request.redact) if (secret) excerpt = excerpt.replaceAll(secret, "[redacted]");
            resolve({ status: res.statusCode ?? 0, retryAfterMs: retryAfter(res.headers["retry-after"]), excerpt });
            res.destroy();
          });
        res.on("data", (chunk: Buffer) => {
          if (read < MAX_READ_BYTES) chunks.push(chunk.subarray(0, MAX_READ_BYTES - read));
          read += chunk.length;
          if (read >= MAX_READ_BYTES) done();
        });
        res.on("end", done);
        res.on("close", done);
        res.on("error", done);
      },
    );
    const timer = setTimeout(() => {
      finish(() => reject(new WebhookPostError("timeout", `The receiver did not answer within ${timeoutMs / 1000} s.`)));
      req.destroy();
    }, timeoutMs);
    req.on("error", (error) => finish(() => reject(networkError(error))));
    req.end(request.body);
  });
}
