/**
 * Gmail and Microsoft 365 send over SMTP with XOAUTH2. The token comes from an
 * AccessTokenProvider (src/oauth implements it); here a small in-process provider stands in
 * for it, so these tests pin the contract between the transport and the provider. The SMTP
 * server is real: smtp-server checks the user and the token it receives.
 */
import { randomUUID } from "node:crypto";
import pino from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { GMAIL_LOGIN_REJECTED, gmailDriver } from "../../src/drivers/gmail/index.js";
import { MICROSOFT365_LOGIN_REJECTED, microsoft365Driver } from "../../src/drivers/microsoft365/index.js";
import {
  type AccessTokenProvider,
  DeliveryError,
  type OutgoingMessage,
  type Transport,
  type TransportContext,
} from "../../src/kernel/transport.js";
import { createSmtpTransport, type LoginRejection } from "../../src/transport/smtp.js";
import { type PeerAuth, type SmtpPeer, startSmtpPeer } from "../peers/smtp-peer.js";

const ACCOUNT = "someone@gmail.test";

/** Hands out `tokens[0]` until asked to renew, then the next one; records every call. */
class ScriptedTokens implements AccessTokenProvider {
  readonly calls: boolean[] = [];
  private index = 0;
  account = ACCOUNT;

  constructor(
    private readonly tokens: string[],
    private readonly failWith?: unknown,
  ) {}

  async user(): Promise<string> {
    return this.account;
  }

  async accessToken(renew: boolean): Promise<string> {
    this.calls.push(renew);
    if (this.failWith) throw this.failWith;
    if (renew) this.index = Math.min(this.index + 1, this.tokens.length - 1);
    return this.tokens[this.index];
  }

  get renewals(): number {
    return this.calls.filter(Boolean).length;
  }
}

function context(port: number, tokens?: AccessTokenProvider): TransportContext {
  return {
    serverId: "srv_oauth_test",
    serverName: "OAuth test",
    fromAddress: ACCOUNT,
    settings: { host: "localhost", port, security: "starttls" },
    secrets: { clientSecret: "client-secret-value" },
    dataDir: "/nonexistent",
    log: pino({ level: "silent" }),
    tokens,
    poolSize: 2,
  };
}

function message(): OutgoingMessage {
  return {
    id: "msg_oauth",
    messageId: `${randomUUID()}@mailroom.test`,
    from: { address: ACCOUNT },
    to: [{ address: "rcpt@example.net" }],
    cc: [],
    bcc: [],
    replyTo: [],
    subject: "XOAUTH2 ✓",
    text: "Sent with an access token.",
    attachments: [],
    headers: {},
  };
}

function xoauth2Blob(token: string): string {
  return Buffer.from(`user=${ACCOUNT}\x01auth=Bearer ${token}\x01\x01`).toString("base64");
}

async function failure(promise: Promise<unknown>): Promise<DeliveryError> {
  const error = await promise.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(DeliveryError);
  return error as DeliveryError;
}

let peer: SmtpPeer;
const transports: Transport[] = [];

function open(tokens: AccessTokenProvider, loginRejected: LoginRejection = GMAIL_LOGIN_REJECTED): Transport {
  const transport = createSmtpTransport(context(peer.port, tokens), { loginRejected, oauth: true, trustedCa: peer.ca });
  transports.push(transport);
  return transport;
}

function expectAuth(auth: Omit<PeerAuth, "user">): void {
  peer.setAuth({ user: ACCOUNT, methods: ["XOAUTH2"], ...auth });
}

beforeAll(async () => {
  peer = await startSmtpPeer({ security: "starttls", auth: { user: ACCOUNT, accessToken: "unused", methods: ["XOAUTH2"] } });
});
afterAll(() => peer.close());
afterEach(async () => {
  await Promise.all(transports.splice(0).map((t) => t.close()));
  peer.clear();
});

describe("XOAUTH2 login", () => {
  it("sends the authorized account and its access token over STARTTLS", async () => {
    expectAuth({ accessToken: "token-1" });
    const tokens = new ScriptedTokens(["token-1"]);
    await open(tokens).send(message());

    expect(peer.authAttempts).toEqual([{ method: "XOAUTH2", user: ACCOUNT, accessToken: "token-1", ok: true }]);
    expect(peer.received).toHaveLength(1);
    expect(peer.received[0]).toMatchObject({ user: ACCOUNT, secure: true, subject: "XOAUTH2 ✓" });
    expect(tokens.calls).toEqual([false]);
  });

  it("renews once and delivers when Gmail rejects the token (334 with a JSON error, then 535)", async () => {
    expectAuth({ accessToken: "fresh-token", tokenRejection: "gmail" });
    const tokens = new ScriptedTokens(["stale-token", "fresh-token"]);
    await open(tokens).send(message());

    expect(tokens.calls).toEqual([false, true]);
    expect(peer.authAttempts.map((a) => [a.accessToken, a.ok])).toEqual([
      ["stale-token", false],
      ["fresh-token", true],
    ]);
    expect(peer.received).toHaveLength(1);
  });

  it("renews once and delivers when the server answers 535 at once (no 334 challenge)", async () => {
    expectAuth({ accessToken: "fresh-token", tokenRejection: "535" });
    const tokens = new ScriptedTokens(["stale-token", "fresh-token"]);
    await open(tokens, MICROSOFT365_LOGIN_REJECTED).send(message());

    expect(tokens.calls).toEqual([false, true]);
    expect(peer.authAttempts.map((a) => [a.accessToken, a.ok])).toEqual([
      ["stale-token", false],
      ["fresh-token", true],
    ]);
    expect(peer.received).toHaveLength(1);
  });

  it("renews only once when the fresh token is rejected too (Gmail), and names Gmail's hint", async () => {
    expectAuth({ accessToken: "never-issued", tokenRejection: "gmail" });
    const tokens = new ScriptedTokens(["stale-token", "also-rejected"]);
    const error = await failure(open(tokens).send(message()));

    expect(error.code).toBe("gmail_credentials_rejected");
    expect(error.kind).toBe("server");
    expect(error.remote.code).toBe(535);
    expect(tokens.renewals).toBe(1);
    expect(peer.authAttempts).toHaveLength(2);
    expect(peer.received).toHaveLength(0);
    expect(JSON.stringify(error) + error.message).not.toMatch(/stale-token|also-rejected/);
  });

  it("renews only once when the fresh token is rejected too (535 at once), with Microsoft's hint", async () => {
    expectAuth({ accessToken: "never-issued", tokenRejection: "535" });
    const tokens = new ScriptedTokens(["stale-token", "also-rejected"]);
    const error = await failure(open(tokens, MICROSOFT365_LOGIN_REJECTED).send(message()));

    expect(error.code).toBe("smtp_auth_failed");
    expect(error.kind).toBe("server");
    expect(error.message).toMatch(/SMTP AUTH is enabled for the mailbox/);
    expect(tokens.renewals).toBe(1);
    expect(peer.authAttempts).toHaveLength(2);
  });

  it("logs in as the new account after a re-authorization with another one", async () => {
    peer.setAuth({ user: "second@gmail.test", methods: ["XOAUTH2"], accessToken: "token-1" });
    const tokens = new ScriptedTokens(["token-1"]);
    const transport = open(tokens);
    const error = await failure(transport.send(message()));
    expect(error.code).toBe("gmail_credentials_rejected");
    tokens.account = "second@gmail.test";
    await transport.send(message());
    expect(peer.received.map((m) => m.user)).toEqual(["second@gmail.test"]);
    expect(peer.authAttempts.map((a) => a.user)).toEqual([ACCOUNT, ACCOUNT, "second@gmail.test"]);
  });

  it("passes the provider's own delivery errors through: a revoked grant holds for reauthorization", async () => {
    expectAuth({ accessToken: "token-1" });
    const revoked = new DeliveryError("oauth_reauthorization_required", "reauthorization", "The grant was revoked.");
    const error = await failure(open(new ScriptedTokens(["token-1"], revoked)).send(message()));
    expect(error).toBe(revoked);
    expect(peer.received).toHaveLength(0);
  });

  it("treats any other provider failure as a token endpoint that failed for a moment", async () => {
    expectAuth({ accessToken: "token-1" });
    const error = await failure(open(new ScriptedTokens(["token-1"], new Error("fetch failed"))).send(message()));
    expect(error.code).toBe("oauth_token_unavailable");
    expect(error.kind).toBe("transient");
  });
});

describe("XOAUTH2 check", () => {
  it("logs in with the token, renewing once after Gmail's rejection, and keeps every token out of the transcript", async () => {
    expectAuth({ accessToken: "fresh-token", tokenRejection: "gmail" });
    const tokens = new ScriptedTokens(["stale-token", "fresh-token"]);
    const result = await open(tokens).check({ from: ACCOUNT, to: "rcpt@example.net" });

    expect(result.error).toBeUndefined();
    expect(result.steps.find((s) => s.step === "auth")?.detail).toBe(`Logged in as ${ACCOUNT} with XOAUTH2`);
    expect(tokens.calls).toEqual([false, true]);
    expect(peer.sawData).toBe(false);

    const transcript = result.transcript.join("\n");
    expect(transcript).toContain("C: AUTH XOAUTH2 [redacted]");
    expect(transcript).toContain("S: 334 [redacted]");
    expect(transcript).toMatch(/S: 535 /);
    expect(transcript).toMatch(/S: 235 /);
    for (const token of ["stale-token", "fresh-token"]) {
      expect(transcript).not.toContain(token);
      expect(transcript).not.toContain(xoauth2Blob(token));
      expect(transcript).not.toContain(Buffer.from(token).toString("base64").replace(/=+$/, ""));
    }
    expect(JSON.stringify(result)).not.toContain("client-secret-value");
  });

  it("fails the auth step with the hint when the token stays rejected", async () => {
    expectAuth({ accessToken: "never-issued" });
    const tokens = new ScriptedTokens(["stale-token", "also-rejected"]);
    const result = await open(tokens).check({ from: ACCOUNT, to: "rcpt@example.net" });
    expect(result.steps.at(-1)).toMatchObject({ step: "auth", ok: false });
    expect(result.error?.code).toBe("gmail_credentials_rejected");
    expect(JSON.stringify(result)).not.toMatch(/stale-token|also-rejected/);
  });
});

describe("OAuth drivers without an authorized account", () => {
  it.each([
    ["gmail", gmailDriver],
    ["microsoft365", microsoft365Driver],
  ])("%s refuses to build a transport with oauth_not_authorized", (_id, driver) => {
    let error: unknown;
    try {
      driver.createTransport!(context(peer.port));
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(DeliveryError);
    expect(error).toMatchObject({ code: "oauth_not_authorized", kind: "server" });
  });

  it("builds one through the driver when a provider is given", async () => {
    expectAuth({ accessToken: "token-1" });
    const transport = gmailDriver.createTransport!(context(peer.port, new ScriptedTokens(["token-1"])));
    transports.push(transport);
    // The driver trusts only the system store, so the test CA's certificate is refused:
    // proof that gmail verifies certificates with no way to turn that off.
    const error = await failure(transport.send(message()));
    expect(error.code).toBe("tls_certificate_invalid");
  });
});
