/**
 * Posts to URLs someone typed (alert channels, Slack and Teams incoming webhooks, applications'
 * webhooks). Unlike a
 * driver's API, such a URL may point anywhere, so the operator's policy (MAILROOM_ALLOWED_ENDPOINTS,
 * src/transport/operator.ts) decides what is inside the fence:
 *
 * - link-local and cloud metadata addresses: never, even if listed (nothing alerts there);
 * - loopback and private addresses (127/8, 10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7, …):
 *   only an endpoint the operator lists;
 * - plain http://: only an endpoint the operator lists (the body, and for Slack the URL itself,
 *   would cross the network readable; a signature proves the sender, it hides nothing);
 * - anything else (a public https:// address): allowed.
 *
 * The name is checked when saved, and every address it resolves to when connecting (the same
 * lookup the connection uses), so DNS cannot swap a private address in between. Redirects are
 * never followed.
 */
import { type LookupAddress, lookup } from "node:dns";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import type { OperatorPolicy } from "../kernel/operator-policy.js";
import { DeliveryError } from "../kernel/transport.js";
import { networkError, redact } from "../transport/http.js";
import { isEndpointAllowed, isLinkLocalOrMetadata, urlPort } from "../transport/operator.js";

const MAX_URL = 2000;
/** How much of a receiver's answer is kept (to show what it said), and the most read of it. */
const MAX_ANSWER = 500;
const MAX_READ_BYTES = 8192;
export const DEFAULT_POST_TIMEOUT_MS = 10_000;

const inside = new net.BlockList();
inside.addSubnet("0.0.0.0", 8, "ipv4");
inside.addSubnet("10.0.0.0", 8, "ipv4");
inside.addSubnet("100.64.0.0", 10, "ipv4");
inside.addSubnet("127.0.0.0", 8, "ipv4");
inside.addSubnet("172.16.0.0", 12, "ipv4");
inside.addSubnet("192.168.0.0", 16, "ipv4");
inside.addSubnet("198.18.0.0", 15, "ipv4");
inside.addSubnet("224.0.0.0", 3, "ipv4"); // multicast and reserved
inside.addAddress("::", "ipv6");
inside.addAddress("::1", "ipv6");
inside.addSubnet("fc00::", 7, "ipv6");
inside.addSubnet("ff00::", 8, "ipv6");

function bare(host: string): string {
  return host.replace(/^\[|\]$/g, "").toLowerCase();
}

/** A loopback, private, shared, reserved, link-local or metadata address (IPv4-mapped IPv6 included). */
export function isInternalAddress(address: string): boolean {
  const plain = bare(address).replace(/%.*$/, "");
  if (isLinkLocalOrMetadata(plain)) return true;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(plain)?.[1];
  if (mapped) return inside.check(mapped, "ipv4");
  const family = net.isIP(plain);
  if (family === 4) return inside.check(plain, "ipv4");
  if (family === 6) return inside.check(plain, "ipv6");
  return plain === "localhost" || plain.endsWith(".localhost");
}

/** Why an address may not be posted to, or null. */
/** What is posted, for the messages: "alerts" or "webhooks". */
export type Posting = "alerts" | "webhooks";
const USER_AGENTS: Record<Posting, string> = { alerts: "Mailroom-Alerts", webhooks: "Mailroom-Webhooks/1" };

function addressProblem(operator: OperatorPolicy, url: URL, address: string, what: Posting): string | null {
  const where = `${url.hostname}:${urlPort(url)}`;
  const via = bare(url.hostname) === bare(address) ? "" : ` (it resolves to ${address})`;
  if (isLinkLocalOrMetadata(address)) {
    return `${where} is a link-local or cloud metadata address${via}: Mailroom never posts ${what} there`;
  }
  if (isInternalAddress(address) && !listed(operator, url)) {
    return `${where} is a loopback or private address${via}: Mailroom posts there only when the operator lists it in MAILROOM_ALLOWED_ENDPOINTS`;
  }
  return null;
}

function listed(operator: OperatorPolicy, url: URL): boolean {
  return isEndpointAllowed(operator, { protocol: url.protocol, host: url.hostname, port: urlPort(url) });
}

/**
 * Checks a receiver URL as typed, without resolving it: its form, and what its host and
 * scheme alone tell. Answers the parsed URL or the problem (a sentence that names the fix).
 */
export function checkReceiverUrl(
  raw: string,
  operator: OperatorPolicy,
  what: Posting = "alerts",
): { url: URL } | { problem: string /** The operator's policy refuses it (not the URL's form). */; refused?: boolean } {
  if (raw.length > MAX_URL) return { problem: `must be at most ${MAX_URL} characters` };
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { problem: "must be an https:// URL, e.g. https://alerts.example.com/mailroom" };
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return { problem: "must be an https:// URL" };
  if (url.username || url.password) return { problem: "must not hold a user or password: put credentials in the path or query" };
  if (url.hash) return { problem: "must not have a #fragment" };
  if (url.protocol === "http:" && !listed(operator, url)) {
    return {
      refused: true,
      problem: `must use https://; plain http:// only to an endpoint the operator lists in MAILROOM_ALLOWED_ENDPOINTS (${url.origin} is not)`,
    };
  }
  const problem = addressProblem(operator, url, url.hostname, what);
  return problem ? { problem, refused: true } : { url };
}

/** A `lookup` that refuses what the policy refuses, at connect time (exported for its test). */
export function guardedLookup(operator: OperatorPolicy, url: URL, what: Posting): net.LookupFunction {
  return (hostname, options, callback) => {
    const answer = callback as (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;
    lookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return answer(err, options.all ? [] : "");
      const refused = addresses.map((a) => addressProblem(operator, url, a.address, what)).find((p) => p !== null);
      if (refused) return answer(new DeliveryError("endpoint_not_allowed", "server", `${refused}.`), options.all ? [] : "");
      if (options.all) return answer(null, addresses);
      answer(null, addresses[0].address, addresses[0].family);
    });
  };
}

export interface PostResult {
  status: number;
  /** From Retry-After (seconds or an HTTP date), when the receiver sent one. */
  retryAfterMs?: number;
  /** The start of the receiver's answer, with the URL's secret parts removed. */
  answer: string;
  ms: number;
}

export interface PostOptions {
  operator: OperatorPolicy;
  timeoutMs?: number;
  /** What must never be kept from the answer or an error (a Slack URL, its path, a signing secret). */
  secrets?: string[];
  what?: Posting;
}

function retryAfterMs(value: string | undefined): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/**
 * POSTs a JSON body and answers the receiver's status (any status: the caller decides what
 * counts). Throws a DeliveryError when nothing answered: refused by the policy
 * (endpoint_not_allowed), DNS, refused, timed out, TLS, dropped.
 */
export async function postJson(
  url: URL,
  body: string,
  headers: Record<string, string>,
  options: PostOptions,
): Promise<PostResult> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_POST_TIMEOUT_MS;
  const secrets = [url.href, url.pathname.length > 1 ? url.pathname : "", url.search, ...(options.secrets ?? [])].filter(
    (s) => s.length >= 4,
  );
  const checked = checkReceiverUrl(url.href, options.operator, options.what);
  if ("problem" in checked) throw new DeliveryError("endpoint_not_allowed", "server", `The receiver URL ${checked.problem}.`);
  const who = `The receiver at ${url.hostname}`;
  const started = performance.now();
  const request = url.protocol === "https:" ? https.request : http.request;
  try {
    const { status, text, retryAfter } = await new Promise<{ status: number; text: string; retryAfter?: string }>(
      (resolve, reject) => {
        const req = request(
          url,
          {
            method: "POST",
            headers: { "content-type": "application/json", "user-agent": USER_AGENTS[options.what ?? "alerts"], ...headers },
            lookup: guardedLookup(options.operator, url, options.what ?? "alerts"),
            signal: AbortSignal.timeout(timeoutMs),
            // A fresh connection each time: alerts are rare, and a pooled one would skip the lookup's check.
            agent: false,
          },
          (res) => {
            const chunks: Buffer[] = [];
            let size = 0;
            // Only the start of an answer is kept; a receiver that goes on is not read further.
            const done = () =>
              resolve({
                status: res.statusCode ?? 0,
                text: Buffer.concat(chunks).toString("utf8"),
                retryAfter: res.headers["retry-after"],
              });
            res.on("data", (chunk: Buffer) => {
              if (size < MAX_READ_BYTES) chunks.push(chunk.subarray(0, MAX_READ_BYTES - size));
              size += chunk.length;
              if (size >= MAX_READ_BYTES) {
                done();
                res.destroy();
              }
            });
            res.on("end", done);
            res.on("error", reject);
          },
        );
        req.on("error", reject);
        req.end(body);
      },
    );
    return {
      status,
      retryAfterMs: retryAfterMs(retryAfter),
      answer: redact(text.trim(), secrets).slice(0, MAX_ANSWER),
      ms: Math.round(performance.now() - started),
    };
  } catch (err) {
    const error = networkError(who, err, timeoutMs);
    // A Node error can quote what it was given; nothing of the URL's path survives.
    throw new DeliveryError(error.code, error.kind, redact(error.message, secrets), error.remote);
  }
}
