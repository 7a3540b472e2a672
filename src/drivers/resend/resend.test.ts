/**
 * Resend against a local peer that answers as Resend's API documents: the driver's own
 * tests live in its folder; the shared contract (test/drivers/contract.test.ts) and the API
 * tests pick the driver up from the registry and its `example`.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import pino from "pino";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { OperatorPolicy } from "../../kernel/operator-policy.js";
import { DeliveryError, type OutgoingMessage, type TransportContext } from "../../kernel/transport.js";
import { parseAllowedEndpoint } from "../../transport/operator.js";
import { resendDriver } from "./index.js";
import { createResendTransport, RESEND_API } from "./transport.js";

const FULL_KEY = "re_full_4f0e9c6b2e5a7d1f8c30";
const SENDING_KEY = "re_send_9a2b41d84f0e9c6b2e5a";

interface Seen {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  body: unknown;
}

/** What the peer answers to the next POST /emails, when a test wants a refusal. */
let next: { status: number; body: unknown; headers?: Record<string, string> } | undefined;
const seen: Seen[] = [];
let server: http.Server;
let url: string;

function peer(req: http.IncomingMessage, res: http.ServerResponse, raw: string) {
  const answer = (status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { "Content-Type": "application/json", ...headers });
    res.end(JSON.stringify(body));
  };
  const key = (req.headers.authorization ?? "").replace(/^Bearer /, "");
  seen.push({ method: req.method ?? "", path: req.url ?? "", headers: req.headers, body: raw ? JSON.parse(raw) : undefined });
  if (key !== FULL_KEY && key !== SENDING_KEY) {
    return answer(401, { statusCode: 401, name: "validation_error", message: "API key is invalid" });
  }
  if (req.method === "GET" && req.url === "/domains") {
    if (key === SENDING_KEY) {
      return answer(401, {
        statusCode: 401,
        name: "restricted_api_key",
        message: "This API key is restricted to only send emails",
      });
    }
    return answer(200, { data: [{ id: "d1", name: "example.com", status: "verified" }] });
  }
  if (req.method === "POST" && req.url === "/emails") {
    if (next) return answer(next.status, next.body, next.headers);
    return answer(200, { id: "49a3999c-0ce1-4ea6-ab68-afcd6dc2e794" });
  }
  answer(404, { statusCode: 404, name: "not_found", message: "Not found" });
}

const operator = (): OperatorPolicy => ({ sendmailCommands: {}, allowedEndpoints: [parseAllowedEndpoint(url) ?? { host: "" }] });

function context(apiKey = FULL_KEY, baseUrl = url): TransportContext {
  return {
    operator: operator(),
    serverId: "srv-resend",
    serverName: "Resend",
    fromAddress: "sender@example.com",
    settings: { baseUrl },
    secrets: { apiKey },
    dataDir: "/nonexistent",
    log: pino({ level: "silent" }),
    poolSize: 1,
  };
}

const message = (overrides: Partial<OutgoingMessage> = {}): OutgoingMessage => ({
  id: "msg-1",
  messageId: "msg-1@mailroom.example",
  from: { address: "sender@example.com", name: 'Zoë "Z", Ltd' },
  to: [{ address: "to@example.org" }],
  cc: [{ address: "cc@example.org" }],
  bcc: [{ address: "bcc@example.org" }],
  replyTo: [{ address: "replies@example.com" }],
  subject: "Grüße ✓",
  text: "Hello",
  html: "<p>Hello</p>",
  attachments: [{ filename: "a.txt", contentType: "text/plain", content: Buffer.from("attached") }],
  headers: { "X-Campaign": "spring" },
  ...overrides,
});

const probe = { from: "sender@example.com", to: "to@example.org" };

async function failure(promise: Promise<unknown>): Promise<DeliveryError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DeliveryError);
  return err as DeliveryError;
}

beforeAll(async () => {
  server = http.createServer((req, res) => {
    let raw = "";
    req.setEncoding("utf8");
    req.on("data", (chunk: string) => {
      raw += chunk;
    });
    req.on("end", () => peer(req, res, raw));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
beforeEach(() => {
  seen.length = 0;
  next = undefined;
});

describe("resend driver", () => {
  it("posts the message as Resend's JSON with the key as a Bearer token, and keeps Resend's id", async () => {
    const result = await createResendTransport(context()).send(message());
    expect(result.providerMessageId).toBe("49a3999c-0ce1-4ea6-ab68-afcd6dc2e794");
    const [request] = seen;
    expect(`${request.method} ${request.path}`).toBe("POST /emails");
    expect(request.headers.authorization).toBe(`Bearer ${FULL_KEY}`);
    expect(request.headers["idempotency-key"]).toBe("msg-1@mailroom.example");
    expect(request.body).toEqual({
      from: '"Zoë \\"Z\\", Ltd" <sender@example.com>',
      to: ["to@example.org"],
      cc: ["cc@example.org"],
      bcc: ["bcc@example.org"],
      reply_to: ["replies@example.com"],
      subject: "Grüße ✓",
      text: "Hello",
      html: "<p>Hello</p>",
      headers: { "X-Campaign": "spring", "Message-ID": "<msg-1@mailroom.example>" },
      attachments: [{ filename: "a.txt", content: Buffer.from("attached").toString("base64"), content_type: "text/plain" }],
    });
  });

  it("sends a raw message as its parsed fields, its custom headers and Message-ID kept", async () => {
    const raw = Buffer.from(
      "From: sender@example.com\r\nTo: to@example.org\r\nSubject: Raw one\r\nMessage-ID: <raw-1@client>\r\nX-Trace: t1\r\n\r\nPlain body\r\n",
    );
    await createResendTransport(context()).send(
      message({ messageId: "raw-1@client", raw, text: undefined, html: undefined, attachments: [], headers: {} }),
    );
    const body = seen[0].body as Record<string, unknown>;
    expect(body).toMatchObject({ subject: "Raw one", text: "Plain body\n", attachments: [] });
    expect(body.headers).toEqual({ "X-Trace": "t1", "Message-ID": "<raw-1@client>" });
  });

  it("maps Resend's refusals: validation to this message, the key to the server, 429 and 5xx to retries", async () => {
    next = { status: 422, body: { statusCode: 422, name: "validation_error", message: "Invalid `to` field." } };
    const invalid = await failure(createResendTransport(context()).send(message()));
    expect([invalid.code, invalid.kind]).toEqual(["message_rejected", "message"]);
    expect(invalid.message).toBe("Resend refused the message (validation_error): Invalid `to` field.");

    const unauthorized = await failure(createResendTransport(context("re_wrong_key_000000")).send(message()));
    expect([unauthorized.code, unauthorized.kind]).toEqual(["provider_unauthorized", "server"]);

    next = {
      status: 429,
      body: { statusCode: 429, name: "rate_limit_exceeded", message: "Too many requests" },
      headers: { "Retry-After": "7" },
    };
    const limited = await failure(createResendTransport(context()).send(message()));
    expect([limited.code, limited.kind, limited.retryAfterMs]).toEqual(["provider_rate_limited", "rate_limited", 7000]);

    next = { status: 503, body: { statusCode: 503, name: "internal_server_error", message: "Try later" } };
    const down = await failure(createResendTransport(context()).send(message()));
    expect([down.code, down.kind]).toEqual(["provider_unavailable", "transient"]);
  });

  it("talks only to api.resend.com unless the operator allows another endpoint", async () => {
    const strict: OperatorPolicy = { sendmailCommands: {}, allowedEndpoints: [] };
    expect(resendDriver.checkDestinations?.({ baseUrl: url }, strict)).toEqual([
      { field: "settings.baseUrl", message: expect.stringContaining("MAILROOM_ALLOWED_ENDPOINTS") },
    ]);
    expect(resendDriver.checkDestinations?.({ baseUrl: url }, operator())).toEqual([]);
    expect(resendDriver.checkDestinations?.({ baseUrl: RESEND_API }, strict)).toEqual([]);
    const err = await failure((async () => createResendTransport({ ...context(), operator: strict }))());
    expect(err.code).toBe("endpoint_not_allowed");
    expect(seen).toHaveLength(0);
  });

  it("binds the key to the base URL it is sent to", () => {
    expect(resendDriver.fields.find((f) => f.key === "baseUrl")?.destination).toBe(true);
  });

  it("checks the key: a full key lists its domains, a sending-only key passes, a wrong key fails, the key never shown", async () => {
    const full = await createResendTransport(context()).check(probe);
    expect(full.error).toBeUndefined();
    expect(full.steps.map((s) => s.step)).toEqual(["connect", "authenticate", "domains"]);
    expect(full.steps.at(-1)?.detail).toContain("example.com (verified)");

    const sending = await createResendTransport(context(SENDING_KEY)).check(probe);
    expect(sending.error).toBeUndefined();
    expect(sending.steps.at(-1)?.detail).toContain("sending access only");

    const wrong = await createResendTransport(context("re_wrong_key_000000")).check(probe);
    expect(wrong.error?.code).toBe("provider_unauthorized");
    expect(wrong.steps.find((s) => !s.ok)?.step).toBe("authenticate");
    expect(JSON.stringify([full, sending, wrong])).not.toMatch(/re_full_|re_send_|re_wrong_/);
  });
});
