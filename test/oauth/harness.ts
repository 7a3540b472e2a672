/**
 * A Mailroom on a fresh database pointed at a local OAuth issuer, with the steps of
 * "Authorize account" as a browser would take them: ask Mailroom for the URL, follow it to
 * the issuer, bring the issuer's redirect back to Mailroom's callback.
 */
import { randomBytes, randomUUID } from "node:crypto";
import type { InjectOptions, LightMyRequestResponse } from "fastify";
import { expect } from "vitest";
import { GMAIL_LOGIN_REJECTED } from "../../src/drivers/gmail/index.js";
import { MICROSOFT365_LOGIN_REJECTED } from "../../src/drivers/microsoft365/index.js";
import type { Settings } from "../../src/kernel/settings.js";
import type { OutgoingMessage, Transport } from "../../src/kernel/transport.js";
import { createSmtpTransport } from "../../src/transport/smtp.js";
import { type Caller, startTestApp, type TestApp } from "../helpers/app.js";
import type { Dialect } from "../helpers/databases.js";
import type { SmtpPeer } from "../peers/smtp-peer.js";
import { type IssuerKind, type MockIssuer, startIssuer } from "./issuer.js";

export const CLIENT_ID = "mailroom-test-client.apps.example";
/** Recognisable so that leak checks can look for it. */
export const CLIENT_SECRET = `client-secret-${randomBytes(8).toString("hex")}`;
export const FROM = "sender@example.com";

export interface Harness {
  t: TestApp;
  issuer: MockIssuer;
  kind: IssuerKind;
  /** gmail / microsoft365 (SMTP) unless the test names another driver of the provider. */
  driver: string;
  /** Everything Mailroom answered (bodies and Location headers), for leak checks. */
  answers: string[];
  request(caller: Caller | null, options: InjectOptions): Promise<LightMyRequestResponse>;
  createServer(name?: string, settings?: Record<string, unknown>): Promise<string>;
  /** POST …/oauth/authorize; expects 200 and returns the provider URL. */
  authorize(serverId: string, caller?: Caller): Promise<URL>;
  /** What the issuer redirects the browser to (Mailroom's callback with code and state). */
  followIssuer(authorizationUrl: URL): Promise<URL>;
  /** GETs the callback as the browser of `caller` (its cookies, the binding cookie too); returns Mailroom's redirect. */
  callback(callbackUrl: URL, caller?: Caller | null): Promise<URL>;
  /** The binding cookie "Authorize account" gave this caller's browser. */
  bindingOf(caller: Caller): string | undefined;
  /** The whole path; returns Mailroom's final redirect. */
  connect(serverId: string, caller?: Caller): Promise<URL>;
  server(serverId: string): Promise<Record<string, unknown> & { status: string; statusDetail: string | null }>;
  tokenRow(serverId: string): Promise<Record<string, unknown> | undefined>;
  /**
   * Makes the server's access token expired, in the database and in the app's memory, as
   * its lifetime running out would: what a test does instead of waiting for that.
   */
  expireAccessToken(serverId: string): Promise<void>;
  audit(action?: string): Promise<Array<{ action: string; target_id: string | null; after: string | null }>>;
  /** Fails if any token, code, client secret or PKCE verifier shows in logs, answers, audit or DB in plain. */
  expectNoLeaks(extra?: string[]): Promise<void>;
  close(): Promise<void>;
}

export async function startHarness(
  dialect: Dialect,
  kind: IssuerKind,
  env: Record<string, string> = {},
  driver = kind === "google" ? "gmail" : "microsoft365",
): Promise<Harness> {
  const issuer = await startIssuer(kind);
  const t = await startTestApp(dialect, { ...issuer.env, ...env });
  const answers: string[] = [];
  // Each caller is a browser: it keeps the binding cookie its "Authorize account" set.
  const bindings = new Map<Caller, string>();
  let servers = 0;

  const request = async (caller: Caller | null, options: InjectOptions) => {
    const res = await t.request(caller, options);
    answers.push(res.body, String(res.headers.location ?? ""));
    return res;
  };

  const h: Harness = {
    t,
    issuer,
    kind,
    driver,
    answers,
    request,
    async createServer(name = `${kind} ${++servers}`, settings = {}) {
      const res = await request(t.admin, {
        method: "POST",
        url: "/api/email-servers",
        payload: {
          name,
          driver,
          fromAddress: FROM,
          fromName: "Sender",
          settings: { clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, ...settings },
        },
      });
      expect(res.statusCode, res.body).toBe(201);
      return res.json().id as string;
    },
    async authorize(serverId, caller = t.admin) {
      const res = await request(caller, { method: "POST", url: `/api/email-servers/${serverId}/oauth/authorize` });
      expect(res.statusCode, res.body).toBe(200);
      const binding = res.cookies.find((c) => c.name === "mailroom_oauth");
      expect(binding).toMatchObject({ httpOnly: true, sameSite: "Lax", path: "/oauth" });
      bindings.set(caller, binding?.value as string);
      return new URL(res.json().authorizationUrl);
    },
    async followIssuer(authorizationUrl) {
      const res = await fetch(authorizationUrl, { redirect: "manual" });
      expect(res.status).toBe(302);
      return new URL(res.headers.get("location") as string);
    },
    async callback(callbackUrl, caller = t.admin) {
      const binding = caller ? bindings.get(caller) : undefined;
      const cookie = [caller?.headers.cookie, binding ? `mailroom_oauth=${binding}` : undefined].filter(Boolean).join("; ");
      const res = await request(caller && { headers: { ...caller.headers, cookie } }, {
        method: "GET",
        url: `${callbackUrl.pathname}${callbackUrl.search}`,
      });
      expect(res.statusCode, res.body).toBe(303);
      expect(res.headers["cache-control"]).toBe("no-store");
      return new URL(String(res.headers.location), "http://localhost:8025");
    },
    bindingOf(caller) {
      return bindings.get(caller);
    },
    async connect(serverId, caller = t.admin) {
      return h.callback(await h.followIssuer(await h.authorize(serverId, caller)), caller);
    },
    async server(serverId) {
      const res = await request(t.admin, { method: "GET", url: `/api/email-servers/${serverId}` });
      expect(res.statusCode, res.body).toBe(200);
      return res.json();
    },
    async tokenRow(serverId) {
      return t.mailroom.ctx.db.selectFrom("oauth_tokens").selectAll().where("server_id", "=", serverId).executeTakeFirst();
    },
    async expireAccessToken(serverId) {
      const past = Date.now() - 1000;
      await t.mailroom.ctx.db
        .updateTable("oauth_tokens")
        .set({ access_expires_at: past, access_obtained_at: past - 3600_000 })
        .where("server_id", "=", serverId)
        .execute();
      t.mailroom.oauth.tokens.forget(serverId);
    },
    async audit(action) {
      let query = t.mailroom.ctx.db.selectFrom("audit_log").select(["action", "target_id", "after"]).orderBy("id");
      if (action) query = query.where("action", "=", action);
      return query.execute();
    },
    async expectNoLeaks(extra = []) {
      const db = t.mailroom.ctx.db;
      const tables = await Promise.all([
        db.selectFrom("audit_log").selectAll().execute(),
        db.selectFrom("oauth_tokens").selectAll().execute(),
        db.selectFrom("oauth_authorizations").selectAll().execute(),
        db.selectFrom("email_servers").selectAll().execute(),
      ]);
      const places: Array<[string, string]> = [
        ["logs", t.logs.join("\n")],
        ["answers", answers.join("\n")],
        ["audit", JSON.stringify(tables[0])],
        ["database", JSON.stringify(tables.slice(1))],
      ];
      const secrets = [...issuer.issued, ...issuer.requests.map((r) => r.codeVerifier ?? ""), CLIENT_SECRET, ...extra].filter(
        (s) => s.length >= 8,
      );
      expect(secrets.length).toBeGreaterThan(0);
      for (const secret of secrets) {
        for (const [where, text] of places) {
          if (text.includes(secret)) throw new Error(`a secret (${secret.slice(0, 6)}…) appears in ${where}`);
        }
      }
    },
    async close() {
      await t.close();
      await issuer.stop();
    },
  };
  return h;
}

/** The search parameters of Mailroom's redirect after a callback. */
export function outcomeOf(location: URL): { page: string; oauth: string | null; code: string | null } {
  return { page: location.pathname, oauth: location.searchParams.get("oauth"), code: location.searchParams.get("code") };
}

/**
 * What the gmail/microsoft365 driver builds for the server (its SMTP transport with
 * Mailroom's tokens), trusting the peer's CA; the caller closes it.
 */
export async function oauthTransport(h: Harness, serverId: string, peer: SmtpPeer, poolSize = 2): Promise<Transport> {
  const row = await h.t.mailroom.servers.getRow(serverId);
  return createSmtpTransport(
    {
      serverId,
      serverName: row.name,
      fromAddress: row.from_address,
      settings: JSON.parse(row.settings) as Settings,
      secrets: h.t.mailroom.servers.secretsOf(row),
      dataDir: h.t.mailroom.ctx.config.dataDir,
      log: h.t.mailroom.ctx.log,
      tokens: h.t.mailroom.oauth.tokenProvider(serverId),
      poolSize,
    },
    { loginRejected: h.kind === "google" ? GMAIL_LOGIN_REJECTED : MICROSOFT365_LOGIN_REJECTED, oauth: true, trustedCa: peer.ca },
  );
}

/** A message from the authorized account. */
export function oauthMessage(subject: string): OutgoingMessage {
  return {
    id: randomUUID(),
    messageId: `${randomUUID()}@mailroom.test`,
    from: { address: FROM, name: "Sender" },
    to: [{ address: "rcpt@example.net" }],
    cc: [],
    bcc: [],
    replyTo: [],
    subject,
    text: "Sent with an OAuth access token.",
    attachments: [],
    headers: {},
  };
}
