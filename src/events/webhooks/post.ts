/**
 * One POST to an application's webhook URL: the events layer's guarded client (../outbound.ts)
 * with the webhooks' names. A webhook URL is typed by an application (an API token), so it
 * gets the same narrow door as an alert channel: no internal address and no plain http://
 * unless the operator lists the endpoint, link-local and metadata never; the address checked
 * is the one connected to, and redirects are never followed.
 */
import type { OperatorPolicy } from "../../kernel/operator-policy.js";
import { checkReceiverUrl, DEFAULT_POST_TIMEOUT_MS, postJson } from "../outbound.js";

export { isInternalAddress } from "../outbound.js";

/** How long a receiver may take to answer, as Standard Webhooks suggests (real time). */
export const WEBHOOK_TIMEOUT_MS = DEFAULT_POST_TIMEOUT_MS;

/** Why a URL cannot be a webhook's, or null. Host names are checked again, resolved, at each attempt. */
export function webhookUrlProblem(
  value: string,
  operator: OperatorPolicy,
): { code: "validation_failed" | "endpoint_not_allowed"; message: string } | null {
  const checked = checkReceiverUrl(value, operator, "webhooks");
  if ("url" in checked) return null;
  return { code: checked.refused ? "endpoint_not_allowed" : "validation_failed", message: checked.problem };
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

/**
 * Posts the body; resolves with any HTTP answer, rejects with a DeliveryError (its `code`:
 * endpoint_not_allowed, a DNS, connection or timeout code) when none came.
 */
export async function postWebhook(request: PostRequest): Promise<PostResult> {
  const answer = await postJson(new URL(request.url), request.body, request.headers, {
    operator: request.operator,
    timeoutMs: request.timeoutMs ?? WEBHOOK_TIMEOUT_MS,
    secrets: request.redact,
    what: "webhooks",
  });
  return { status: answer.status, retryAfterMs: answer.retryAfterMs, excerpt: answer.answer };
}
