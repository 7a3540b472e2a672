/**
 * What the end-to-end tests (test/oauth/api-drivers.test.ts) do not reach through the API:
 * a message submitted over SMTP (raw MIME), and a send that fails after its draft
 * was made. Against the Graph peer, with tokens from a fixed provider.
 */
import pino from "pino";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createGraphTransport } from "../../src/drivers/microsoft-graph/transport.js";
import {
  type AccessTokenProvider,
  DeliveryError,
  type OutgoingMessage,
  type TransportContext,
} from "../../src/kernel/transport.js";
import { type GraphPeer, startGraphPeer } from "../peers/graph-peer.js";

const ACCOUNT = "sender@example.com";
let peer: GraphPeer;

const tokens: AccessTokenProvider = { user: async () => ACCOUNT, accessToken: async () => "graph-token-0123456789" };

function context(): TransportContext {
  return {
    serverId: "srv-graph",
    serverName: "Graph",
    fromAddress: ACCOUNT,
    settings: {},
    secrets: {},
    dataDir: "/nonexistent",
    log: pino({ level: "silent" }),
    poolSize: 1,
    tokens,
    operator: { sendmailCommands: {}, allowedEndpoints: [], apiUrls: { microsoftGraph: peer.url } },
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

async function failure(promise: Promise<unknown>): Promise<DeliveryError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DeliveryError);
  return err as DeliveryError;
}

beforeAll(async () => {
  peer = await startGraphPeer();
  peer.acceptsToken = (token) => token === "graph-token-0123456789";
});
afterAll(() => peer.close());
beforeEach(() => {
  peer.sent.length = 0;
  peer.requests.length = 0;
  peer.faults.length = 0;
});

describe("microsoft-graph driver", () => {
  it("sends a raw (SMTP-submitted) message unchanged, its blind recipients as a Bcc header", async () => {
    const raw = Buffer.from("From: sender@example.com\r\nTo: to@example.org\r\nSubject: Raw\r\n\r\nBody\r\n");
    await createGraphTransport(context()).send(message({ raw, bcc: [{ address: "blind@example.org" }] }));
    expect(peer.sent[0].mime.toString()).toBe(`Bcc: blind@example.org\r\n${raw.toString()}`);
  });

  it("refuses a raw message above 4 MB before any request: it cannot be split unchanged", async () => {
    const raw = Buffer.concat([Buffer.from("Subject: Big\r\n\r\n"), Buffer.alloc(3_200_000, "a")]);
    const err = await failure(createGraphTransport(context()).send(message({ raw })));
    expect([err.code, err.kind]).toEqual(["message_rejected", "message"]);
    expect(err.message).toContain("4 MB");
    expect(peer.requests).toHaveLength(0);
  });

  it("deletes the draft when its send fails, so a retry leaves no copy behind", async () => {
    peer.faults.push({
      on: "send",
      status: 400,
      code: "ErrorMessageSizeExceeded",
      message: "The message exceeds the maximum supported size.",
    });
    const big = { filename: "big.bin", contentType: "application/octet-stream", content: Buffer.alloc(3_400_000, 1) };
    const err = await failure(createGraphTransport(context()).send(message({ attachments: [big] })));
    expect([err.code, err.kind]).toEqual(["message_rejected", "message"]);
    expect(peer.requests.map((r) => `${r.method} ${r.path.replace(/AAMk\w+|[\w-]{36}/g, "{id}")}`)).toEqual([
      "POST /v1.0/users/sender%40example.com/messages",
      "POST /v1.0/users/sender%40example.com/messages/{id}/attachments/createUploadSession",
      "PUT /upload/{id}",
      "PUT /upload/{id}",
      "POST /v1.0/users/sender%40example.com/messages/{id}/send",
      "DELETE /v1.0/users/sender%40example.com/messages/{id}",
    ]);
    expect(peer.drafts.size).toBe(0);
  });
});
