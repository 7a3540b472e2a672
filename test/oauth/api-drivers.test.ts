/**
 * The providers' HTTP API drivers end to end: "Authorize account" against the local issuer
 * with the driver's own scope, then mail through the queue and the real delivery worker to
 * a peer that answers as Microsoft Graph or the Gmail API documents (test/peers), the token
 * from Mailroom's token store. Each refusal ends in the status the failure policy names,
 * with the hint the admin acts on.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { systemActor } from "../../src/core/audit.js";
import type { Caller } from "../helpers/app.js";
import { availableDialects } from "../helpers/databases.js";
import { waitFor } from "../helpers/wait.js";
import { type GmailApiPeer, startGmailApiPeer } from "../peers/gmail-api-peer.js";
import { type GraphPeer, startGraphPeer } from "../peers/graph-peer.js";
import { FROM, type Harness, outcomeOf, startHarness } from "./harness.js";
import { answers } from "./issuer.js";

/** Defines a test only where it applies: a dialect- or driver-specific case is not a skip. */
const itWhen = (applies: boolean): typeof it => (applies ? it : ((() => {}) as unknown as typeof it));

const GMAIL_SEND = "https://www.googleapis.com/auth/gmail.send";
const GRAPH_MAIL_SEND = "https://graph.microsoft.com/Mail.Send";

interface Sent {
  mime: string;
  /** sendMail / simple, or the path for large messages (draft / media). */
  via: string;
  uploaded: number;
}

/** What differs between the two drivers: the peer, its switches and the codes it leads to. */
interface ApiCase {
  driver: "microsoft-graph" | "gmail-api";
  kind: "microsoft" | "google";
  scope: string;
  /** Scopes the SMTP driver of the same provider gets, which this driver must not ask for. */
  smtpScope: string;
  start(): Promise<{ url: string; close(): Promise<void> }>;
  env(url: string): Record<string, string>;
  accept(accepts: (token: string) => boolean): void;
  sent(): Sent[];
  smallVia: string;
  largeVia: string;
  /** A large attachment that takes the upload path. */
  largeBytes: number;
  denyPermission(): void;
  disableMailbox(): void;
  restore(): void;
  rateLimit(retryAfter: string): void;
  refuseRecipient(): void;
  permissionCode: string;
  permissionHint: RegExp;
  disabledCode: string;
  disabledHint: RegExp;
  readMailbox(on: boolean): void;
  checkNote: RegExp;
}

let graph: GraphPeer;
let gmail: GmailApiPeer;

const cases: ApiCase[] = [
  {
    driver: "microsoft-graph",
    kind: "microsoft",
    scope: GRAPH_MAIL_SEND,
    smtpScope: "https://outlook.office.com/SMTP.Send",
    start: async () => (graph = await startGraphPeer()),
    env: (url) => ({ MAILROOM_MICROSOFT_GRAPH_URL: url }),
    accept: (accepts) => {
      graph.acceptsToken = accepts;
    },
    sent: () => graph.sent.map((s) => ({ mime: s.mime.toString("utf8"), via: s.via, uploaded: s.uploaded.length })),
    smallVia: "sendMail",
    largeVia: "draft",
    largeBytes: 3_500_000,
    denyPermission: () => graph.mailboxes.set(FROM, "access_denied"),
    disableMailbox: () => graph.mailboxes.set(FROM, "not_enabled"),
    restore: () => {
      graph.mailboxes.clear();
      graph.faults.length = 0;
    },
    rateLimit: (retryAfter) =>
      graph.faults.push({
        status: 429,
        code: "TooManyRequests",
        message: "Too many requests",
        headers: { "Retry-After": retryAfter },
      }),
    refuseRecipient: () =>
      graph.faults.push({ status: 400, code: "ErrorInvalidRecipients", message: "At least one recipient is not valid." }),
    permissionCode: "microsoft_graph_access_denied",
    permissionHint: /application access policy or RBAC for Applications/,
    disabledCode: "microsoft_graph_mailbox_not_enabled",
    disabledHint: /licensed Exchange Online mailbox/,
    readMailbox: (on) => {
      graph.userReadGranted = on;
    },
    checkNote: /User\.Read\.All not granted\): only a send proves/,
  },
  {
    driver: "gmail-api",
    kind: "google",
    scope: GMAIL_SEND,
    smtpScope: "https://mail.google.com/",
    start: async () => (gmail = await startGmailApiPeer(FROM)),
    env: (url) => ({ MAILROOM_GOOGLE_GMAIL_API_URL: url }),
    accept: (accepts) => {
      gmail.acceptsToken = accepts;
    },
    sent: () => gmail.sent.map((s) => ({ mime: s.mime.toString("utf8"), via: s.via, uploaded: 0 })),
    smallVia: "simple",
    largeVia: "media",
    largeBytes: 3_000_000,
    denyPermission: () => {
      gmail.state = "scope_missing";
    },
    disableMailbox: () => {
      gmail.state = "api_disabled";
    },
    restore: () => {
      gmail.state = "ok";
      gmail.faults.length = 0;
    },
    rateLimit: (retryAfter) =>
      gmail.faults.push({
        status: 429,
        reason: "userRateLimitExceeded",
        message: "User-rate limit exceeded.",
        headers: { "Retry-After": retryAfter },
      }),
    refuseRecipient: () => gmail.faults.push({ status: 400, reason: "invalidArgument", message: "Invalid To header" }),
    permissionCode: "gmail_api_scope_missing",
    permissionHint: /lacks https:\/\/www\.googleapis\.com\/auth\/gmail\.send/,
    disabledCode: "gmail_api_not_enabled",
    disabledHint: /enable it under APIs & Services/,
    readMailbox: (on) => {
      gmail.profileReadable = on;
    },
    checkNote: /needs gmail\.metadata or gmail\.readonly, which Mailroom does not ask for/,
  },
];

describe.each(await availableDialects())("the providers' HTTP API drivers on %s", (dialect) => {
  describe.each(cases)("$driver", (c) => {
    let h: Harness;
    let peer: { url: string; close(): Promise<void> };
    let app: Caller;
    /** Tokens the peer no longer accepts (revoked or expired early at the provider). */
    const refused = new Set<string>();

    beforeAll(async () => {
      peer = await c.start();
      h = await startHarness(
        dialect,
        c.kind,
        { ...c.env(peer.url), MAILROOM_POLL_MS: "20", MAILROOM_RETRY_SCHEDULE: "0.05", MAILROOM_BREAKER_THRESHOLD: "1" },
        c.driver,
      );
      h.issuer.grantedScope = `${c.scope} openid email`;
      c.accept((token) => h.issuer.issued.includes(token) && !refused.has(token));
      const { token } = await h.t.mailroom.tokens.create(
        { name: "app", permissions: ["messages.send", "messages.view"] },
        systemActor,
        null,
      );
      app = { headers: { authorization: `Bearer ${token}` } };
      h.t.mailroom.worker.start();
    });
    afterAll(async () => {
      await h?.close();
      await peer?.close();
    });

    async function connectedServer(): Promise<string> {
      c.restore();
      const id = await h.createServer();
      expect(outcomeOf(await h.connect(id)).oauth).toBe("success");
      return id;
    }
    async function send(server: string, payload: Record<string, unknown> = {}): Promise<string> {
      const res = await h.t.request(app, {
        method: "POST",
        url: "/api/messages",
        payload: { server, to: "rcpt@example.net", subject: "Through the API", text: "Hello", ...payload },
      });
      expect(res.statusCode, res.body).toBe(202);
      return res.json().id;
    }
    const message = async (id: string) =>
      (await h.t.request(h.t.admin, { method: "GET", url: `/api/messages/${id}` })).json() as {
        status: string;
        lastError: { code: string; message: string } | null;
        nextAttemptAt: string | null;
        attempts: { errorCode: string | null }[];
      };
    const settled = (id: string, status: string) =>
      waitFor(`message ${id} ${status}`, async () => {
        const m = await message(id);
        return m.status === status ? m : undefined;
      });

    it("asks only for its own scope, refuses a grant without it, and sends through the queue", async () => {
      const id = await h.createServer();
      const authorizationUrl = await h.authorize(id);
      const scopes = authorizationUrl.searchParams.get("scope")?.split(" ") ?? [];
      expect(scopes).toContain(c.scope);
      expect(scopes).not.toContain(c.smtpScope);

      // A consent that left out sending: the callback refuses it and stores nothing.
      h.issuer.grantedScope = `${c.smtpScope} openid email`;
      const refusedGrant = outcomeOf(await h.callback(await h.followIssuer(authorizationUrl)));
      h.issuer.grantedScope = `${c.scope} openid email`;
      expect(refusedGrant).toMatchObject({ oauth: "error", code: "oauth_scope_missing" });
      expect((await h.server(id)).status).toBe("not_authorized");

      const server = await connectedServer();
      const before = c.sent().length;
      const sent = await settled(await send(server, { cc: "cc@example.net", bcc: "hidden@example.net" }), "sent");
      expect(sent.lastError).toBeNull();
      const [delivered] = c.sent().slice(before);
      expect(delivered.via).toBe(c.smallVia);
      expect(delivered.mime).toMatch(/^Subject: Through the API$/m);
      expect(delivered.mime).toMatch(/^To: rcpt@example\.net$/m);
      // These APIs read the recipients from the headers: Bcc must reach them (they remove it).
      expect(delivered.mime).toMatch(/^Bcc: hidden@example\.net$/m);
      expect(delivered.mime).toMatch(/^From: Sender <sender@example\.com>$/m);
      await h.expectNoLeaks();
    });

    it("sends a large message through the upload path", async () => {
      const server = await connectedServer();
      const before = c.sent().length;
      const content = Buffer.alloc(c.largeBytes, "large attachment ");
      await settled(
        await send(server, {
          attachments: [
            { filename: "big.bin", contentType: "application/octet-stream", content: content.toString("base64") },
            { filename: "small.txt", contentType: "text/plain", content: Buffer.from("small").toString("base64") },
          ],
        }),
        "sent",
      );
      const [delivered] = c.sent().slice(before);
      expect(delivered.via).toBe(c.largeVia);
      if (c.driver === "microsoft-graph") {
        // The big one through an upload session in 320 KiB multiples, the small one inside the draft's MIME.
        const uploaded = graph.sent.at(-1)?.uploaded ?? [];
        expect(uploaded.map((u) => [u.name, u.size, u.chunks])).toEqual([["big.bin", c.largeBytes, 2]]);
        expect(uploaded[0].content.equals(content)).toBe(true);
        expect(delivered.mime).toContain("filename=small.txt");
        expect(delivered.mime).not.toContain("big.bin");
        expect(graph.drafts.size).toBe(0);
        // The upload URL is pre-authorized: no token went there.
        expect(graph.requests.filter((r) => r.path.startsWith("/upload/")).every((r) => r.token === undefined)).toBe(true);
      } else {
        expect(delivered.mime).toContain(content.subarray(0, 57).toString("base64"));
      }
    });

    it("renews a token the provider refuses (401) once, and sends", async () => {
      const server = await connectedServer();
      await settled(await send(server), "sent");
      const stored = h.t.mailroom.ctx.secrets.decrypt(String((await h.tokenRow(server))?.access_token));
      refused.add(stored);
      const refreshes = h.issuer.refreshRequests().length;
      const sent = await settled(await send(server), "sent");
      expect(sent.attempts).toHaveLength(1);
      expect(h.issuer.refreshRequests()).toHaveLength(refreshes + 1);
      const renewed = h.t.mailroom.ctx.secrets.decrypt(String((await h.tokenRow(server))?.access_token));
      expect(renewed).not.toBe(stored);
      if (c.kind === "microsoft") {
        // One Microsoft refresh token serves several resources: the refresh names Graph's scope.
        expect(h.issuer.refreshRequests().at(-1)?.scope?.split(" ")).toContain(GRAPH_MAIL_SEND);
      }

      // Refused again after the renewal: one renewal per attempt, then a server problem.
      c.accept(() => false);
      try {
        const failing = await settled(await send(server), "held");
        expect(failing.attempts.map((a) => a.errorCode)).toEqual(["provider_unauthorized"]);
        expect(h.issuer.refreshRequests()).toHaveLength(refreshes + 2);
      } finally {
        c.accept((token) => h.issuer.issued.includes(token) && !refused.has(token));
      }
    });

    it("holds the mail of a revoked grant, and sends it once after a new authorization", async () => {
      const server = await connectedServer();
      await h.expireAccessToken(server);
      h.issuer.next.push(answers.invalidGrant());
      const id = await send(server);
      await settled(id, "held");
      expect((await h.server(server)).status).toBe("reauthorization_required");
      const before = c.sent().length;
      expect(outcomeOf(await h.connect(server)).oauth).toBe("success");
      await settled(id, "sent");
      expect(c.sent().length).toBe(before + 1);
    });

    it("holds the mail of a server without the permission to send, and says why", async () => {
      const server = await connectedServer();
      c.denyPermission();
      const held = await settled(await send(server), "held");
      expect(held.attempts.map((a) => a.errorCode)).toEqual([c.permissionCode]);
      expect(held.lastError?.message).toMatch(c.permissionHint);
      const view = await h.server(server);
      expect(view.status).toBe("failing");
      expect(view.statusDetail).toMatch(c.permissionHint);
    });

    it("holds the mail of a disabled mailbox or API, and says why", async () => {
      const server = await connectedServer();
      c.disableMailbox();
      const held = await settled(await send(server), "held");
      expect(held.attempts.map((a) => a.errorCode)).toEqual([c.disabledCode]);
      expect((await h.server(server)).statusDetail).toMatch(c.disabledHint);
    });

    /** Sends one message into the scripted throttling; answers how long Mailroom will wait. */
    async function throttledWait(server: string): Promise<number> {
      const id = await send(server);
      const limited = await waitFor("the rate-limited attempt", async () => {
        const m = await message(id);
        return m.lastError ? m : undefined;
      });
      expect(limited.status).toBe("queued");
      expect(limited.lastError?.code).toBe("provider_rate_limited");
      expect((await h.server(server)).status).toBe("ready");
      return Date.parse(String(limited.nextAttemptAt)) - Date.now();
    }

    it("waits what a 429's Retry-After says, without counting it against the server", async () => {
      const server = await connectedServer();
      c.rateLimit("120");
      const wait = await throttledWait(server);
      expect(wait).toBeGreaterThan(100_000);
      expect(wait).toBeLessThanOrEqual(121_000);
    });

    itWhen(c.driver === "microsoft-graph")("takes Graph's 503 with Retry-After as throttling, an HTTP date too", async () => {
      const server = await connectedServer();
      const at = new Date(Date.now() + 300_000).toUTCString();
      graph.faults.push({
        status: 503,
        code: "ServiceUnavailable",
        message: "Service unavailable",
        headers: { "Retry-After": at },
      });
      const wait = await throttledWait(server);
      expect(wait).toBeGreaterThan(280_000);
      expect(wait).toBeLessThanOrEqual(301_000);
    });

    it("fails a message whose recipient the provider refuses, at once", async () => {
      const server = await connectedServer();
      c.refuseRecipient();
      const failed = await settled(await send(server), "failed");
      expect(failed.attempts.map((a) => a.errorCode)).toEqual(["recipient_rejected"]);
      expect((await h.server(server)).status).toBe("ready");
    });

    it("checks the connection: the token, then the mailbox as far as the scopes let it", async () => {
      const server = await connectedServer();
      const check = async () => {
        const res = await h.request(h.t.admin, {
          method: "POST",
          url: `/api/email-servers/${server}/test`,
          payload: { mode: "check" },
        });
        expect(res.statusCode, res.body).toBe(200);
        return res.json() as { steps: { step: string; ok: boolean; detail: string }[]; error?: { code: string } };
      };
      const leastPrivilege = await check();
      expect(leastPrivilege.error).toBeUndefined();
      expect(leastPrivilege.steps.map((s) => [s.step, s.ok])).toEqual([
        ["token", true],
        ["mailbox", true],
      ]);
      expect(leastPrivilege.steps[1].detail).toMatch(c.checkNote);

      c.readMailbox(true);
      const read = await check();
      c.readMailbox(false);
      expect(read.steps[1].detail).toContain(FROM);
      expect(read.steps[1].detail).not.toMatch(c.checkNote);

      c.disableMailbox();
      if (c.driver === "gmail-api") {
        const disabled = await check();
        expect(disabled.error?.code).toBe("gmail_api_not_enabled");
      }
      c.restore();
      await h.expectNoLeaks();
    });
  });
});
