import { type ParsedMail, simpleParser } from "mailparser";
import pino from "pino";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { mailgunDriver } from "../../src/drivers/mailgun/index.js";
import { createMailgunTransport, mailgunBase } from "../../src/drivers/mailgun/transport.js";
import { errorCatalogue } from "../../src/kernel/errors.js";
import type { OutgoingMessage, TransportContext } from "../../src/kernel/transport.js";
import { retryAfterMs } from "../../src/transport/http.js";
import { type ProviderPeer, startProviderPeer } from "../peers/provider-peer.js";
import { sampleMessage as baseMessage, PDF, PNG, sendError } from "./sample.js";

const sampleMessage = (overrides: Partial<OutgoingMessage> = {}) =>
  baseMessage({ from: { address: "sender@mg.example.com", name: "Zoë Sender" }, replyTo: [], ...overrides });

const API_KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0";
const DOMAIN = "mg.example.com";

let peer: ProviderPeer;

/** The operator allows the peer (and any endpoint a test names) as MAILROOM_ALLOWED_ENDPOINTS would. */
function allowing(...endpoints: string[]) {
  return loadConfig({ MAILROOM_ALLOWED_ENDPOINTS: [peer.url, ...endpoints].join(",") }).operator;
}

function context(settings: Record<string, string> = {}, apiKey = API_KEY): TransportContext {
  return {
    operator: allowing(settings.baseUrl ?? peer.url),
    serverId: "srv-mailgun",
    serverName: "Mailgun",
    fromAddress: "sender@mg.example.com",
    settings: { domain: DOMAIN, region: "us", baseUrl: peer.url, ...settings },
    secrets: { apiKey },
    dataDir: "/nonexistent",
    log: pino({ level: "silent" }),
    poolSize: 1,
  };
}

beforeAll(async () => {
  peer = await startProviderPeer({
    mailgun: { apiKey: API_KEY, domains: { [DOMAIN]: "active", "new.example.com": "unverified" } },
  });
});
afterAll(async () => {
  await peer.close();
});
beforeEach(() => {
  peer.requests.length = 0;
  peer.mailgun.length = 0;
});

describe("mailgun driver", () => {
  it("is registered with a transport", () => {
    expect(mailgunDriver.createTransport).toBeTypeOf("function");
  });

  it("picks the region's API address unless the operator allows a base URL", () => {
    expect(mailgunBase({ region: "us" }).href).toBe("https://api.mailgun.net/");
    expect(mailgunBase({ region: "eu" }).href).toBe("https://api.eu.mailgun.net/");
    const proxy = { region: "eu", baseUrl: "https://proxy.example.com/mg/" };
    expect(() => mailgunBase(proxy)).toThrow(expect.objectContaining({ code: "endpoint_not_allowed" }));
    expect(mailgunBase(proxy, allowing("https://proxy.example.com")).href).toBe("https://proxy.example.com/mg/");
  });

  it("delivers UTF-8 subject, text, html, an attachment and an inline image intact", async () => {
    const transport = createMailgunTransport(context({ messageStreamTag: "welcome" }));
    const message = sampleMessage();
    const result = await transport.send(message);

    expect(peer.mailgun).toHaveLength(1);
    const got = peer.mailgun[0];
    expect(result.providerMessageId).toBe(got.id);
    expect(got.domain).toBe(DOMAIN);
    expect(got.to).toEqual(["rcpt@example.org", "cc@example.org", "hidden@example.org"]);
    expect(got.tags).toEqual(["welcome"]);
    expect(got.filename).toBe("message.mime");
    const request = peer.requests[0];
    expect(request.method).toBe("POST");
    expect(request.path).toBe(`/v3/${DOMAIN}/messages.mime`);
    expect(request.headers.authorization).toBe(`Basic ${Buffer.from(`api:${API_KEY}`).toString("base64")}`);

    const mail: ParsedMail = await simpleParser(got.mime);
    expect(mail.subject).toBe(message.subject);
    expect(mail.text?.trim()).toBe(message.text);
    expect(mail.html).toContain("<p>Hallo <b>Welt</b> — ✓</p>");
    expect(mail.messageId).toBe(`<${message.messageId}>`);
    expect(mail.from?.value[0]).toEqual({ address: "sender@mg.example.com", name: "Zoë Sender" });
    expect(mail.headers.get("x-mailroom-test")).toBe("yes");
    expect(mail.headers.has("bcc")).toBe(false);
    const pdf = mail.attachments.find((a) => a.filename === "bericht-ä.pdf");
    expect(pdf?.contentType).toBe("application/pdf");
    expect(pdf?.content.equals(PDF)).toBe(true);
    const logo = mail.attachments.find((a) => a.contentId === "<logo@mailroom>");
    expect(logo?.contentType).toBe("image/png");
    expect(logo?.related).toBe(true);
    expect(logo?.content.equals(PNG)).toBe(true);
  });

  it("maps a wrong API key (401 Forbidden) to provider_unauthorized, held for the server", async () => {
    const err = await sendError(createMailgunTransport(context({}, "key-wrong-0000000000")).send(sampleMessage()));
    expect(err.code).toBe("provider_unauthorized");
    expect(err.kind).toBe("server");
    // Mailgun's plain-text 401 is not its JSON error shape: the status alone is kept.
    expect(err.remote).toEqual({ code: 401 });
    expect(err.message).not.toContain("key-wrong");
  });

  it("maps an unknown sending domain (404) to mailgun_domain_not_found", async () => {
    const err = await sendError(createMailgunTransport(context({ domain: "unknown.example.com" })).send(sampleMessage()));
    expect(err.code).toBe("mailgun_domain_not_found");
    expect(err.kind).toBe("server");
    expect(err.remote.code).toBe(404);
    expect(err.remote.response).toContain("Domain not found");
  });

  it("maps Mailgun's invalid recipient (400) to recipient_rejected, failed at once", async () => {
    const message = sampleMessage({ to: [{ address: "no-at-sign" }], cc: [], bcc: [] });
    const err = await sendError(createMailgunTransport(context()).send(message));
    expect(err.code).toBe("recipient_rejected");
    expect(err.kind).toBe("recipient");
    expect(err.remote.code).toBe(400);
  });

  it("honours Retry-After in seconds on 429, then delivers when Mailgun accepts again", async () => {
    const transport = createMailgunTransport(context());
    peer.failNext(1, { status: 429, headers: { "Retry-After": "7" }, body: "Too Many Requests" });
    const err = await sendError(transport.send(sampleMessage()));
    expect(err.code).toBe("provider_rate_limited");
    expect(err.kind).toBe("rate_limited");
    expect(err.retryAfterMs).toBe(7000);
    expect(err.remote).toEqual({ code: 429 });
    await transport.send(sampleMessage());
    expect(peer.mailgun).toHaveLength(1);
  });

  it("honours Retry-After as an HTTP date", async () => {
    const at = new Date(Date.now() + 120_000);
    peer.failNext(1, { status: 429, headers: { "Retry-After": at.toUTCString() } });
    const err = await sendError(createMailgunTransport(context()).send(sampleMessage()));
    expect(err.retryAfterMs).toBeGreaterThan(100_000);
    expect(err.retryAfterMs).toBeLessThanOrEqual(120_000);
    expect(retryAfterMs("Wed, 21 Oct 2015 07:28:00 GMT", Date.parse("2015-10-21T07:27:00Z"))).toBe(60_000);
    expect(retryAfterMs("soon")).toBeUndefined();
  });

  it("treats 5xx as transient provider_unavailable", async () => {
    peer.failNext(1, { status: 503, body: "upstream connect error" });
    const err = await sendError(createMailgunTransport(context()).send(sampleMessage()));
    expect(err.code).toBe("provider_unavailable");
    expect(err.kind).toBe("transient");
    expect(err.remote).toEqual({ code: 503 });
  });

  it("keeps a provider's echo of the key out of the error, and holds on a redirect", async () => {
    peer.failNext(1, { status: 400, body: `{"message": "bad request for key ${API_KEY}"}` });
    const echoed = await sendError(createMailgunTransport(context()).send(sampleMessage()));
    expect(echoed.code).toBe("message_rejected");
    expect(echoed.kind).toBe("message");
    expect(echoed.remote.response).toBe('{"message": "bad request for key [redacted]"}');
    expect(echoed.message).not.toContain(API_KEY);

    peer.failNext(1, { status: 301, headers: { Location: "https://elsewhere.example/v3" }, body: "" });
    const moved = await sendError(createMailgunTransport(context()).send(sampleMessage()));
    expect(moved.kind).toBe("server");
    expect(moved.message).toContain("HTTP 301");
    expect(moved.message).not.toContain("elsewhere.example");
    expect(peer.requests).toHaveLength(2); // the redirect was not followed
  });

  it("maps a refused connection and a timeout to server problems, a dropped connection to a transient error", async () => {
    const closed = await startProviderPeer({});
    const closedUrl = closed.url;
    await closed.close();
    const refused = await sendError(createMailgunTransport(context({ baseUrl: closedUrl })).send(sampleMessage()));
    expect(refused.code).toBe("connection_refused");
    expect(refused.kind).toBe("server");

    peer.failNext(1, { stall: true });
    const slow = await sendError(createMailgunTransport(context(), { timeoutMs: 300 }).send(sampleMessage()));
    expect(slow.code).toBe("connection_timeout");
    expect(slow.kind).toBe("server");

    peer.failNext(1, { drop: true });
    const dropped = await sendError(createMailgunTransport(context()).send(sampleMessage()));
    expect(dropped.code).toBe("connection_dropped");
    expect(dropped.kind).toBe("transient");
  });

  it("check looks the domain up without sending, with a transcript free of the key", async () => {
    const result = await createMailgunTransport(context()).check({ from: "sender@mg.example.com", to: "rcpt@example.org" });
    expect(result.error).toBeUndefined();
    expect(result.steps.map((s) => [s.step, s.ok])).toEqual([
      ["connect", true],
      ["authenticate", true],
      ["domain", true],
    ]);
    expect(result.steps[2].detail).toContain("active");
    expect(peer.requests.map((r) => `${r.method} ${r.path}`)).toEqual([`GET /v3/domains/${DOMAIN}`]);
    expect(peer.mailgun).toHaveLength(0);
    expect(result.transcript[0]).toBe(`> GET ${peer.url}/v3/domains/${DOMAIN}`);
    expect(result.transcript[1]).toMatch(/^< 200 OK \(\d+ ms\)$/);
    const all = JSON.stringify(result);
    expect(all).not.toContain(API_KEY);
    expect(all).not.toContain(Buffer.from(`api:${API_KEY}`).toString("base64"));
  });

  it("check reports a wrong key at the authenticate step with the catalogue's hint", async () => {
    const result = await createMailgunTransport(context({}, "key-wrong-0000000000")).check({ from: "a@b.c", to: "d@e.f" });
    expect(result.steps.map((s) => [s.step, s.ok])).toEqual([
      ["connect", true],
      ["authenticate", false],
    ]);
    expect(result.error?.code).toBe("provider_unauthorized");
    expect(result.error?.hint).toBe(errorCatalogue.provider_unauthorized.summary);
    expect(result.error?.remote).toEqual({ code: 401 });
    expect(JSON.stringify(result)).not.toContain("key-wrong-0000000000");
    expect(peer.requests.every((r) => r.method === "GET")).toBe(true);
  });

  it("check reports an unknown domain and a region mix-up at the domain step", async () => {
    const result = await createMailgunTransport(context({ domain: "unknown.example.com" })).check({ from: "a@b.c", to: "d@e.f" });
    expect(result.steps.map((s) => [s.step, s.ok])).toEqual([
      ["connect", true],
      ["authenticate", true],
      ["domain", false],
    ]);
    expect(result.error?.code).toBe("mailgun_domain_not_found");
    expect(result.error?.hint).toContain("region");
  });

  it("check warns about an unverified domain", async () => {
    const result = await createMailgunTransport(context({ domain: "new.example.com" })).check({ from: "a@b.c", to: "d@e.f" });
    expect(result.steps[2]).toMatchObject({ step: "domain", ok: true });
    expect(result.steps[2].detail).toContain("unverified");
  });

  it("check fails at connect when nothing listens", async () => {
    const closed = await startProviderPeer({});
    const closedUrl = closed.url;
    await closed.close();
    const result = await createMailgunTransport(context({ baseUrl: closedUrl })).check({ from: "a@b.c", to: "d@e.f" });
    expect(result.steps.map((s) => [s.step, s.ok])).toEqual([["connect", false]]);
    expect(result.error?.code).toBe("connection_refused");
    expect(result.transcript[0]).toBe(`> GET ${closedUrl}/v3/domains/${DOMAIN}`);
    expect(result.transcript[1]).toMatch(/^! /);
  });
});
