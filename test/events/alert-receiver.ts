/**
 * The alerts tests' view of the webhook receiver (./receiver.ts): the same node:http server,
 * answering one status (and body) until told another, with URLs by path.
 */
import { type ReceivedRequest, startReceiver as startWebhookReceiver } from "./receiver.js";

export type { ReceivedRequest } from "./receiver.js";

export interface Receiver {
  port: number;
  /** http://127.0.0.1:<port>: what MAILROOM_ALLOWED_ENDPOINTS lists for the tests. */
  origin: string;
  url(path?: string): string;
  received: ReceivedRequest[];
  /** The status the next requests get (200 by default), optionally with a body. */
  answer(status: number, body?: string): void;
  close(): Promise<void>;
}

export async function startReceiver(): Promise<Receiver> {
  const receiver = await startWebhookReceiver();
  let reply = { status: 200, body: "ok" };
  receiver.answer = () => reply;
  return {
    port: receiver.port,
    origin: receiver.url,
    url: (path = "/hook") => `${receiver.url}${path}`,
    received: receiver.received,
    answer(status, body = "ok") {
      reply = { status, body };
    },
    close: receiver.close,
  };
}
