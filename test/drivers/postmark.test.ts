import pino from "pino";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { postmarkDriver } from "../../src/drivers/postmark/index.js";
import { createPostmarkTransport, formatAddress } from "../../src/drivers/postmark/transport.js";
import { errorCatalogue } from "../../src/kernel/errors.js";
import type { OutgoingMessage, TransportContext } from "../../src/kernel/transport.js";
import { type ProviderPeer, startProviderPeer } from "../peers/provider-peer.js";
import { sampleMessage as baseMessage, PDF, PNG, sendError } from "./sample.js";

const sampleMessage = (overrides: Partial<OutgoingMessage> = {}) =>
  baseMessage({
    from: { address: "sender@example.com", name: 'Zoë "Z" Sender, Ltd' },
    replyTo: [{ address: "replies@example.com" }],
    ...overrides,
  });

const TOKEN = "b7c3e9a2-41d8-4f0e-9c6b-2e5a7d1f8c30";

let peer: ProviderPeer;

function context(settings: Record<string, string> = {}, serverToken = TOKEN): TransportContext {
  // The operator allows the peer (or the endpoint a test names), as MAILROOM_ALLOWED_ENDPOINTS would.
  const endpoint = settings.baseUrl ?? peer.url;
  return {
    operator: loadConfig({ MAILROOM_ALLOWED_ENDPOINTS: endpoint }).operator,
    serverId: "srv-postmark",
    serverName: "Postmark",
    fromAddress: "sender@example.com",
    settings: { messageStream: "outbound", baseUrl: peer.url, ...settings },
    secrets: { serverToken },
    dataDir: "/nonexistent",
    log: pino({ level: "silent" }),
    poolSize: 1,
  };
}

beforeAll(async () => {
  peer = await startProviderPeer({
    postmark: {
      serverToken: TOKEN,
      serverName: "Mailroom Tests",
      confirmedSenders: ["sender@example.com"],
      inactiveRecipients: ["bounced@example.org"],
      streams: ["outbound", "broadcast"],
    },
  });
});
afterAll(async () => {
  await peer.close();
});
beforeEach(() => {
  peer.requests.length = 0;
  peer.postmark.length = 0;
});

describe("postmark driver", () => {
  it("is registered with a transport", () => {
    expect(postmarkDriver.createTransport).toBeTypeOf("function");
  });

  it("quotes display names so commas and quotes stay in the name", () => {
    expect(formatAddress({ address: "a@example.com" })).toBe("a@example.com");
    expect(formatAddress({ address: "a@example.com", name: 'A "B", C' })).toBe('"A \\"B\\", C" <a@example.com>');
  });

  it("delivers UTF-8 subject, text, html, an attachment and an inline image intact", async () => {
    const message = sampleMessage();
    const result = await createPostmarkTransport(context({ messageStream: "broadcast" })).send(message);

    expect(peer.postmark).toHaveLength(1);
    const { email, messageId } = peer.postmark[0];
    expect(result.providerMessageId).toBe(messageId);
    const request = peer.requests[0];
    expect(`${request.method} ${request.path}`).toBe("POST /email");
    expect(request.headers["x-postmark-server-token"]).toBe(TOKEN);
    expect(request.headers.accept).toBe("application/json");

    expect(email.From).toBe('"Zoë \\"Z\\" Sender, Ltd" <sender@example.com>');
    expect(email.To).toBe('"Jürgen" <rcpt@example.org>');
    expect(email.Cc).toBe("cc@example.org");
    expect(email.Bcc).toBe("hidden@example.org");
    expect(email.ReplyTo).toBe("replies@example.com");
    expect(email.Subject).toBe(message.subject);
    expect(email.TextBody).toBe(message.text);
    expect(email.HtmlBody).toBe(message.html);
    expect(email.MessageStream).toBe("broadcast");
    expect(email.Headers).toEqual([
      { Name: "Message-ID", Value: `<${message.messageId}>` },
      { Name: "X-Mailroom-Test", Value: "yes" },
    ]);
    const attachments = email.Attachments as { Name: string; Content: string; ContentType: string; ContentID?: string }[];
    expect(attachments).toHaveLength(2);
    expect(attachments[0]).toMatchObject({ Name: "bericht-ä.pdf", ContentType: "application/pdf" });
    expect(attachments[0].ContentID).toBeUndefined();
    expect(Buffer.from(attachments[0].Content, "base64").equals(PDF)).toBe(true);
    expect(attachments[1]).toMatchObject({ Name: "logo.png", ContentType: "image/png", ContentID: "cid:logo@mailroom" });
    expect(Buffer.from(attachments[1].Content, "base64").equals(PNG)).toBe(true);
  });

  it("maps a bad server token (401, ErrorCode 10) to provider_unauthorized", async () => {
    const err = await sendError(createPostmarkTransport(context({}, "not-the-token-1234")).send(sampleMessage()));
    expect(err.code).toBe("provider_unauthorized");
    expect(err.kind).toBe("server");
    expect(err.remote.code).toBe(401);
    expect(err.remote.response).toContain('"ErrorCode":10');
    expect(err.message).not.toContain("not-the-token-1234");
  });

  it("maps an unconfirmed sender signature (422, ErrorCode 400) to postmark_sender_not_confirmed", async () => {
    const message = sampleMessage({ from: { address: "someone@elsewhere.example" } });
    const err = await sendError(createPostmarkTransport(context()).send(message));
    expect(err.code).toBe("postmark_sender_not_confirmed");
    expect(err.kind).toBe("server");
    expect(err.remote.code).toBe(422);
    expect(err.remote.response).toContain("Sender Signature");
  });

  it("maps an inactive recipient (ErrorCode 406) and an invalid address (300) to failures of the message", async () => {
    const inactive = await sendError(
      createPostmarkTransport(context()).send(sampleMessage({ to: [{ address: "bounced@example.org" }], cc: [], bcc: [] })),
    );
    expect(inactive.code).toBe("recipient_rejected");
    expect(inactive.kind).toBe("recipient");
    expect(inactive.message).toContain("ErrorCode 406");

    const invalid = await sendError(
      createPostmarkTransport(context()).send(sampleMessage({ to: [{ address: "no-at-sign" }], cc: [], bcc: [] })),
    );
    expect(invalid.code).toBe("recipient_rejected");
    expect(invalid.kind).toBe("recipient");
    expect(invalid.message).toContain("ErrorCode 300");
  });

  it("holds the server's mail when its message stream does not exist", async () => {
    const err = await sendError(createPostmarkTransport(context({ messageStream: "nope" })).send(sampleMessage()));
    expect(err.code).toBe("message_rejected");
    expect(err.kind).toBe("server");
  });

  it("honours Retry-After on 429 and treats 5xx as transient", async () => {
    const transport = createPostmarkTransport(context());
    peer.failNext(1, {
      status: 429,
      headers: { "Retry-After": "12" },
      body: '{"ErrorCode":429,"Message":"Rate limit exceeded"}',
    });
    const limited = await sendError(transport.send(sampleMessage()));
    expect(limited.code).toBe("provider_rate_limited");
    expect(limited.kind).toBe("rate_limited");
    expect(limited.retryAfterMs).toBe(12_000);

    peer.failNext(1, { status: 500, body: '{"ErrorCode":0,"Message":"Internal server error"}' });
    const down = await sendError(transport.send(sampleMessage()));
    expect(down.code).toBe("provider_unavailable");
    expect(down.kind).toBe("transient");
    expect(down.remote.code).toBe(500);

    await transport.send(sampleMessage());
    expect(peer.postmark).toHaveLength(1);
  });

  it("check reads the server and its stream without sending, and never shows the token", async () => {
    const result = await createPostmarkTransport(context()).check({ from: "sender@example.com", to: "rcpt@example.org" });
    expect(result.error).toBeUndefined();
    expect(result.steps.map((s) => [s.step, s.ok])).toEqual([
      ["connect", true],
      ["authenticate", true],
      ["message stream", true],
    ]);
    expect(result.steps[1].detail).toContain('"Mailroom Tests"');
    expect(peer.requests.map((r) => `${r.method} ${r.path}`)).toEqual(["GET /server", "GET /message-streams/outbound"]);
    expect(peer.postmark).toHaveLength(0);
    expect(result.transcript[0]).toBe(`> GET ${peer.url}/server`);
    // Postmark's /server answer lists the server's API tokens: none of it may reach the result.
    expect(JSON.stringify(result)).not.toContain(TOKEN);
  });

  it("check reports a bad token at the authenticate step with the catalogue's hint", async () => {
    const result = await createPostmarkTransport(context({}, "not-the-token-1234")).check({ from: "a@b.c", to: "d@e.f" });
    expect(result.steps.map((s) => [s.step, s.ok])).toEqual([
      ["connect", true],
      ["authenticate", false],
    ]);
    expect(result.error?.code).toBe("provider_unauthorized");
    expect(result.error?.hint).toBe(errorCatalogue.provider_unauthorized.summary);
    expect(result.error?.remote?.code).toBe(401);
    expect(JSON.stringify(result)).not.toContain("not-the-token-1234");
  });

  it("check reports a message stream the server does not have", async () => {
    const result = await createPostmarkTransport(context({ messageStream: "nope" })).check({ from: "a@b.c", to: "d@e.f" });
    expect(result.steps.map((s) => [s.step, s.ok])).toEqual([
      ["connect", true],
      ["authenticate", true],
      ["message stream", false],
    ]);
    expect(result.error?.code).toBe("invalid_setting");
    expect(result.error?.message).toContain("'nope'");
  });

  it("check answers a 5xx at the request step, transient", async () => {
    peer.failNext(1, { status: 503 });
    const result = await createPostmarkTransport(context()).check({ from: "a@b.c", to: "d@e.f" });
    expect(result.steps.map((s) => [s.step, s.ok])).toEqual([
      ["connect", true],
      ["request", false],
    ]);
    expect(result.error?.code).toBe("provider_unavailable");
  });
});
