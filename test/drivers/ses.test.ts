import pino from "pino";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { sesDriver } from "../../src/drivers/ses/index.js";
import { createSesTransport } from "../../src/drivers/ses/transport.js";
import { errorCatalogue } from "../../src/kernel/errors.js";
import type { TransportContext } from "../../src/kernel/transport.js";
import { startProviderPeer } from "../peers/provider-peer.js";
import { type SesPeer, startSesPeer } from "../peers/ses-peer.js";
import { PDF, PNG, sampleMessage, sendError } from "./sample.js";

const ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE";
const SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

let peer: SesPeer;

function context(settings: Record<string, string> = {}): TransportContext {
  // The operator allows the peer (or the endpoint a test names), as MAILROOM_ALLOWED_ENDPOINTS would.
  const endpoint = settings.endpoint ?? peer.endpoint;
  return {
    operator: loadConfig({ MAILROOM_ALLOWED_ENDPOINTS: endpoint }).operator,
    serverId: "srv-ses",
    serverName: "SES",
    fromAddress: "sender@example.com",
    settings: { region: "eu-west-1", accessKeyId: ACCESS_KEY_ID, endpoint: peer.endpoint, ...settings },
    secrets: { secretAccessKey: SECRET_KEY },
    dataDir: "/nonexistent",
    log: pino({ level: "silent" }),
    poolSize: 1,
  };
}

beforeAll(async () => {
  peer = await startSesPeer();
});
afterAll(async () => {
  await peer?.close();
});
beforeEach(async () => {
  peer.requests.length = 0;
  await peer.clear();
});

describe("ses driver", () => {
  it("is registered with a transport", () => {
    expect(sesDriver.createTransport).toBeTypeOf("function");
  });

  it("delivers UTF-8 subject, text, html, an attachment and an inline image intact, as raw MIME", async () => {
    const transport = createSesTransport(context({ configurationSet: "mailroom-events" }));
    const message = sampleMessage();
    const result = await transport.send(message);
    await transport.close();

    const emails = await peer.emails();
    expect(emails).toHaveLength(1);
    const email = emails[0];
    expect(result.providerMessageId).toBe(email.messageId);
    expect(email.subject).toBe(message.subject);
    expect(email.from).toBe('"Zoë Sender" <sender@example.com>');
    expect(email.destination.to).toEqual(['"Jürgen" <rcpt@example.org>']);
    expect(email.destination.cc).toEqual(["cc@example.org"]);
    expect(email.body.text?.trim()).toBe(message.text);
    expect(email.body.html).toContain("<p>Hallo <b>Welt</b> — ✓</p>");
    const pdf = email.attachments.find((a) => a.filename === "bericht-ä.pdf");
    expect(pdf?.contentType).toBe("application/pdf");
    expect(Buffer.from(pdf?.content ?? "", "base64").equals(PDF)).toBe(true);
    const logo = email.attachments.find((a) => a.contentId === "<logo@mailroom>");
    expect(logo?.contentType).toBe("image/png");
    expect(logo?.related).toBe(true);
    expect(Buffer.from(logo?.content ?? "", "base64").equals(PNG)).toBe(true);

    // One SendEmail call with raw content, the configuration set, and every envelope recipient (Bcc too).
    expect(peer.requests.map((r) => `${r.method} ${r.path}`)).toEqual(["POST /v2/email/outbound-emails"]);
    const body = JSON.parse(peer.requests[0].body) as {
      Content: { Raw?: { Data: string }; Simple?: unknown };
      Destination: { ToAddresses: string[]; CcAddresses: string[]; BccAddresses: string[] };
      ConfigurationSetName: string;
    };
    expect(body.Content.Simple).toBeUndefined();
    const raw = Buffer.from(body.Content.Raw?.Data ?? "", "base64").toString("utf8");
    expect(raw).toContain(`Message-ID: <${message.messageId}>`);
    expect(raw).not.toMatch(/^Bcc:/im);
    expect(body.Destination).toEqual({
      ToAddresses: ["rcpt@example.org"],
      CcAddresses: ["cc@example.org"],
      BccAddresses: ["hidden@example.org"],
    });
    expect(body.ConfigurationSetName).toBe("mailroom-events");
  });

  it("maps MessageRejected 'not verified' to ses_email_not_verified, held for the server", async () => {
    peer.failNext(1, {
      status: 400,
      type: "MessageRejected",
      message: "Email address is not verified. The following identities failed the check in region EU-WEST-1: sender@example.com",
    });
    const err = await sendError(createSesTransport(context()).send(sampleMessage()));
    expect(err.code).toBe("ses_email_not_verified");
    expect(err.kind).toBe("server");
    expect(err.remote.code).toBe(400);
    expect(err.remote.response).toContain("MessageRejected: Email address is not verified");
    expect((await peer.emails()).length).toBe(0);
  });

  it("maps another MessageRejected to ses_message_rejected, failed at once", async () => {
    peer.failNext(1, { status: 400, type: "MessageRejected", message: "Illegal address" });
    const err = await sendError(createSesTransport(context()).send(sampleMessage()));
    expect(err.code).toBe("ses_message_rejected");
    expect(err.kind).toBe("message");
  });

  it("maps throttling to provider_rate_limited with Retry-After, trying once (the queue retries)", async () => {
    peer.failNext(1, {
      status: 429,
      type: "TooManyRequestsException",
      message: "Too many requests",
      headers: { "Retry-After": "3" },
    });
    const err = await sendError(createSesTransport(context()).send(sampleMessage()));
    expect(err.code).toBe("provider_rate_limited");
    expect(err.kind).toBe("rate_limited");
    expect(err.retryAfterMs).toBe(3000);
    expect(peer.requests).toHaveLength(1);
  });

  it("maps rejected credentials (403) to provider_unauthorized without showing the secret", async () => {
    peer.failNext(1, {
      status: 403,
      type: "UnrecognizedClientException",
      message: "The security token included in the request is invalid.",
    });
    const err = await sendError(createSesTransport(context()).send(sampleMessage()));
    expect(err.code).toBe("provider_unauthorized");
    expect(err.kind).toBe("server");
    expect(err.remote.code).toBe(403);
    expect(JSON.stringify({ message: err.message, remote: err.remote })).not.toContain(SECRET_KEY);
  });

  it("treats a 5xx as transient provider_unavailable, with no SDK retry", async () => {
    peer.failNext(1, { status: 500, type: "InternalFailure", message: "The request processing has failed." });
    const err = await sendError(createSesTransport(context()).send(sampleMessage()));
    expect(err.code).toBe("provider_unavailable");
    expect(err.kind).toBe("transient");
    expect(err.remote.code).toBe(500);
    expect(peer.requests).toHaveLength(1);
  });

  it("maps a refused connection to a server problem (as every driver does)", async () => {
    const closed = await startProviderPeer({});
    const url = closed.url;
    await closed.close();
    const err = await sendError(createSesTransport(context({ endpoint: url })).send(sampleMessage()));
    expect(err.code).toBe("connection_refused");
    expect(err.kind).toBe("server");
  });

  it("check calls GetAccount only, sends nothing, and keeps keys out of the transcript", async () => {
    const result = await createSesTransport(context()).check({ from: "sender@example.com", to: "rcpt@example.org" });
    expect(result.error).toBeUndefined();
    expect(result.steps.map((s) => [s.step, s.ok])).toEqual([
      ["connect", true],
      ["authenticate", true],
      ["account", true],
    ]);
    expect(result.steps[2].detail).toContain("production access");
    expect(result.steps[2].detail).toContain("sent 3 of 50000");
    expect(peer.requests.map((r) => `${r.method} ${r.path}`)).toEqual(["GET /v2/email/account"]);
    expect(await peer.emails()).toHaveLength(0);
    expect(result.transcript[0]).toBe(`> GET ${peer.endpoint}/v2/email/account`);
    expect(result.transcript[1]).toMatch(/^< 200 \(\d+ ms\)$/);
    const all = JSON.stringify(result);
    expect(all).not.toContain(SECRET_KEY);
    expect(all).not.toContain(ACCESS_KEY_ID);
  });

  it("check reports rejected credentials at the authenticate step with the hint", async () => {
    peer.failNext(1, {
      status: 403,
      type: "SignatureDoesNotMatch",
      message: "The request signature we calculated does not match.",
    });
    const result = await createSesTransport(context()).check({ from: "a@b.c", to: "d@e.f" });
    expect(result.steps.map((s) => [s.step, s.ok])).toEqual([
      ["connect", true],
      ["authenticate", false],
    ]);
    expect(result.error?.code).toBe("provider_unauthorized");
    expect(result.error?.hint).toBe(errorCatalogue.provider_unauthorized.summary);
    expect(result.transcript[1]).toMatch(/^< 403 SignatureDoesNotMatch/);
    expect(JSON.stringify(result)).not.toContain(SECRET_KEY);
  });

  it("check says when the account is in the sandbox or sending is paused", async () => {
    const sandbox = await startSesPeer({
      account: {
        DedicatedIpAutoWarmupEnabled: false,
        Details: {
          AdditionalContactEmailAddresses: [],
          ContactLanguage: "EN",
          MailType: "TRANSACTIONAL",
          ReviewDetails: { CaseId: "c", Status: "PENDING" },
          UseCaseDescription: "",
          WebsiteURL: "",
        },
        EnforcementStatus: "HEALTHY",
        ProductionAccessEnabled: false,
        SendingEnabled: false,
        SendQuota: { Max24HourSend: 200, MaxSendRate: 1, SentLast24Hours: 0 },
        SuppressionAttributes: { SuppressedReasons: [] },
      },
    });
    try {
      const result = await createSesTransport(context({ endpoint: sandbox.endpoint })).check({ from: "a@b.c", to: "d@e.f" });
      expect(result.steps.at(-1)).toMatchObject({ step: "account", ok: false });
      expect(result.error?.code).toBe("ses_message_rejected");
      expect(result.error?.message).toContain("paused");
    } finally {
      await sandbox.close();
    }
  });

  it("check fails at connect when nothing listens", async () => {
    const closed = await startProviderPeer({});
    const url = closed.url;
    await closed.close();
    const result = await createSesTransport(context({ endpoint: url })).check({ from: "a@b.c", to: "d@e.f" });
    expect(result.steps.map((s) => [s.step, s.ok])).toEqual([["connect", false]]);
    expect(result.error?.code).toBe("connection_refused");
  });
});
