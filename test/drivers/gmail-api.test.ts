/**
 * What the end-to-end tests (test/oauth/api-drivers.test.ts) do not reach through the API:
 * a message submitted over SMTP (raw MIME), Gmail's size limit, and the check's transcript.
 * Against the Gmail API peer, with tokens from a fixed provider.
 */
import pino from "pino";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createGmailApiTransport } from "../../src/drivers/gmail-api/transport.js";
import {
  type AccessTokenProvider,
  DeliveryError,
  type OutgoingMessage,
  type TransportContext,
} from "../../src/kernel/transport.js";
import { type GmailApiPeer, startGmailApiPeer } from "../peers/gmail-api-peer.js";

const ACCOUNT = "sender@example.com";
const TOKEN = "ya29.gmail-api-token-0123456789";
let peer: GmailApiPeer;

const tokens: AccessTokenProvider = { user: async () => ACCOUNT, accessToken: async () => TOKEN };

function context(): TransportContext {
  return {
    serverId: "srv-gmail-api",
    serverName: "Gmail API",
    fromAddress: ACCOUNT,
    settings: {},
    secrets: {},
    dataDir: "/nonexistent",
    log: pino({ level: "silent" }),
    poolSize: 1,
    tokens,
    operator: { sendmailCommands: {}, allowedEndpoints: [], apiUrls: { googleGmail: peer.url } },
  };
}

const message = (overrides: Partial<OutgoingMessage> = {}): OutgoingMessage => ({
  id: "msg-1",
  messageId: "msg-1@mailroom.example",
  from: { address: ACCOUNT },
  to: [{ address: "to@example.org" }],
  cc: [],
  bcc: [],
  replyTo: [],
  subject: "Hello",
  text: "Hello",
  attachments: [],
  headers: {},
  ...overrides,
});

beforeAll(async () => {
  peer = await startGmailApiPeer(ACCOUNT);
  peer.acceptsToken = (token) => token === TOKEN;
});
afterAll(() => peer.close());
beforeEach(() => {
  peer.sent.length = 0;
  peer.requests.length = 0;
});

describe("gmail-api driver", () => {
  it("sends a raw (SMTP-submitted) message unchanged, its blind recipients as a Bcc header, and keeps Gmail's id", async () => {
    const raw = Buffer.from("From: sender@example.com\r\nTo: to@example.org\r\nSubject: Raw\r\n\r\nBody\r\n");
    const result = await createGmailApiTransport(context()).send(message({ raw, bcc: [{ address: "blind@example.org" }] }));
    expect(peer.sent[0].mime.toString()).toBe(`Bcc: blind@example.org\r\n${raw.toString()}`);
    expect(result.providerMessageId).toBe(peer.sent[0].id);
  });

  it("refuses a message over Gmail's 35 MB before any request", async () => {
    const raw = Buffer.concat([Buffer.from("To: to@example.org\r\n\r\n"), Buffer.alloc(35 * 1024 * 1024, "a")]);
    const err = await createGmailApiTransport(context())
      .send(message({ raw }))
      .then(
        () => undefined,
        (e: unknown) => e as DeliveryError,
      );
    expect(err).toBeInstanceOf(DeliveryError);
    expect([err?.code, err?.kind]).toEqual(["message_rejected", "message"]);
    expect(peer.requests).toHaveLength(0);
  });

  it("checks without showing the token in its steps or transcript", async () => {
    const result = await createGmailApiTransport(context()).check({ from: ACCOUNT, to: "to@example.org" });
    expect(result.error).toBeUndefined();
    expect(result.transcript.join("\n")).toContain("GET");
    expect(peer.requests.at(-1)?.token).toBe(TOKEN);
    expect(JSON.stringify(result)).not.toContain(TOKEN);
  });
});
