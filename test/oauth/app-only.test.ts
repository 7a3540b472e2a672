/**
 * App-only credentials end to end, no person in the loop: Microsoft 365 with a client secret
 * or a certificate (client assertion checked against the certificate by the token endpoint),
 * Gmail with a service account (JWT-bearer assertion checked against its public key), each
 * sending through the real delivery worker over STARTTLS + XOAUTH2 (the from mailbox logs in
 * with the issued token). Also: one token request per token lifetime, refusals named with
 * their fix, the mailbox allow-list, and secrets nowhere in answers, logs or the database.
 */
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { systemActor } from "../../src/core/audit.js";
import { DeliveryError } from "../../src/kernel/transport.js";
import { TokenStore } from "../../src/oauth/token-store.js";
import { type Caller, startTestApp, type TestApp } from "../helpers/app.js";
import { availableDialects, tempDir } from "../helpers/databases.js";
import { waitFor } from "../helpers/wait.js";
import { type SmtpPeer, startSmtpPeer } from "../peers/smtp-peer.js";
import {
  APP_CLIENT_ID,
  APP_SECRET,
  type AppIssuer,
  GMAIL_APP_SCOPE,
  MS_APP_SCOPE,
  SA_CLIENT_ID,
  SA_EMAIL,
  startAppIssuer,
} from "./app-issuer.js";
import { TENANT_ID } from "./issuer.js";

const FROM = "sender@example.com";
const ALIAS = "alias@example.com";

describe.each(await availableDialects())("app-only credentials on %s", (dialect) => {
  describe.each(["microsoft", "google"] as const)("%s", (kind) => {
    let provider: AppIssuer;
    let peer: SmtpPeer;
    let t: TestApp;
    let app: Caller;
    const answers: string[] = [];
    const driver = kind === "microsoft" ? "microsoft365" : "gmail";

    beforeAll(async () => {
      provider = await startAppIssuer(kind);
      peer = await startSmtpPeer({ security: "starttls", auth: { user: FROM, accessToken: "none-yet", methods: ["XOAUTH2"] } });
      const caFile = path.join(tempDir(), "ca.pem");
      fs.writeFileSync(caFile, peer.ca);
      t = await startTestApp(dialect, {
        ...provider.env,
        MAILROOM_EXTRA_CA_FILE: caFile,
        MAILROOM_POLL_MS: "20",
        MAILROOM_RETRY_SCHEDULE: "0.05",
      });
      const { token } = await t.mailroom.tokens.create({ name: "app", permissions: ["messages.send"] }, systemActor, null);
      app = { headers: { authorization: `Bearer ${token}` } };
      t.mailroom.worker.start();
    });
    afterEach(() => {
      peer.clear();
    });
    afterAll(async () => {
      await t?.close();
      await peer?.close();
      await provider?.stop();
    });

    /** The peer accepts exactly the tokens the issuer has minted so far. */
    const acceptIssued = () =>
      peer.setAuth({ user: FROM, methods: ["XOAUTH2"], accessToken: [...provider.issuer.issued], tokenRejection: "gmail" });

    const request = async (caller: Caller, options: Parameters<TestApp["request"]>[1]) => {
      const res = await t.request(caller, options);
      answers.push(res.body);
      return res;
    };

    function credentials(method: string): Record<string, unknown> {
      if (method === "client_secret") return { tenant: TENANT_ID, clientId: APP_CLIENT_ID, clientSecret: APP_SECRET };
      if (method === "certificate") {
        return { tenant: TENANT_ID, clientId: APP_CLIENT_ID, certificate: provider.certificate, privateKey: provider.privateKey };
      }
      return { serviceAccountKey: provider.serviceAccountKey };
    }

    let servers = 0;
    async function createServer(method: string, extra: Record<string, unknown> = {}) {
      return request(t.admin, {
        method: "POST",
        url: "/api/email-servers",
        payload: {
          name: `${kind} app ${++servers}`,
          driver,
          fromAddress: FROM,
          settings: {
            host: "localhost",
            port: peer.port,
            security: "starttls",
            authMethod: method,
            allowedFromAddresses: [ALIAS],
            ...credentials(method),
            ...extra,
          },
        },
      });
    }

    async function send(server: string, subject: string, from = FROM): Promise<string> {
      const res = await request(app, {
        method: "POST",
        url: "/api/messages",
        payload: { server, from, to: "rcpt@example.net", subject, text: "x" },
      });
      expect(res.statusCode, res.body).toBe(202);
      return res.json().id;
    }
    const messageRow = (id: string) => t.mailroom.messages.getRow(id);
    const sent = (id: string) => waitFor(`message ${id} sent`, async () => (await messageRow(id)).status === "sent");
    const tokenRow = (id: string) =>
      t.mailroom.ctx.db.selectFrom("oauth_tokens").selectAll().where("server_id", "=", id).executeTakeFirst();

    async function expectNoLeaks(): Promise<void> {
      const db = t.mailroom.ctx.db;
      const stored = JSON.stringify([
        await db.selectFrom("email_servers").selectAll().execute(),
        await db.selectFrom("oauth_tokens").selectAll().execute(),
        await db.selectFrom("audit_log").selectAll().execute(),
        await db.selectFrom("message_attempts").selectAll().execute(),
      ]);
      const secrets = [APP_SECRET, provider.privateKey, provider.serviceAccountKey, ...provider.issuer.issued];
      const keyBody = (pem: string) => pem.split("\n")[1] ?? pem;
      for (const secret of [
        ...secrets,
        keyBody(provider.privateKey),
        keyBody(JSON.parse(provider.serviceAccountKey).private_key),
      ]) {
        for (const [where, text] of [
          ["logs", t.logs.join("\n")],
          ["answers", answers.join("\n")],
          ["database", stored],
        ]) {
          if (text.includes(secret)) throw new Error(`a secret (${secret.slice(0, 12)}…) appears in ${where}`);
        }
      }
    }

    const methods = kind === "microsoft" ? ["client_secret", "certificate"] : ["service_account"];

    it.each(methods)(
      "%s: ready without 'Authorize account', sends through the queue, one token request per lifetime",
      async (method) => {
        const res = await createServer(method);
        expect(res.statusCode, res.body).toBe(201);
        const server = res.json();
        expect(server.status).toBe("ready");
        const checkedBefore = provider.checked.length;

        provider.issuer.next.push(() => queueMicrotask(acceptIssued));
        const first = await send(server.id, "first");
        await sent(first);
        expect(provider.checked.length).toBe(checkedBefore + 1);
        const stored = await tokenRow(server.id);
        const token = t.mailroom.ctx.secrets.decrypt(String(stored?.access_token));
        expect(token).toBe(provider.issuer.issued.at(-1));
        expect(t.mailroom.ctx.secrets.decrypt(String(stored?.refresh_token))).toBe("");
        expect(peer.authAttempts.at(-1)).toEqual({ method: "XOAUTH2", user: FROM, accessToken: token, ok: true });
        expect(peer.received.at(-1)).toMatchObject({ user: FROM, secure: true, subject: "first" });

        // Within the token's lifetime: no new request, however many messages and logins (each
        // send on a new connection, as after an idle timeout), also from the alias.
        const logins = peer.authAttempts.length;
        await t.mailroom.transports.forget(server.id);
        await sent(await send(server.id, "second"));
        await t.mailroom.transports.forget(server.id);
        await sent(await send(server.id, "third", ALIAS));
        expect(peer.authAttempts.length).toBe(logins + 2);
        expect(provider.checked.length).toBe(checkedBefore + 1);
        expect(peer.received.map((m) => m.subject)).toEqual(["first", "second", "third"]);

        const check = provider.checked.at(-1);
        if (method === "client_secret")
          expect(check).toMatchObject({ auth: "client_secret", tenant: TENANT_ID, scope: MS_APP_SCOPE });
        if (method === "certificate") {
          // Verified by the endpoint with the certificate's public key; the claims Entra requires.
          const der = Buffer.from(provider.certificate.replace(/-----[^-]+-----|\s/g, ""), "base64");
          expect(check?.header).toMatchObject({
            alg: "RS256",
            x5t: createHash("sha1").update(der).digest("base64url"),
            "x5t#S256": createHash("sha256").update(der).digest("base64url"),
          });
          expect(check?.claims).toMatchObject({
            iss: APP_CLIENT_ID,
            sub: APP_CLIENT_ID,
            aud: `${provider.url}/${TENANT_ID}/oauth2/v2.0/token`,
          });
          const view = await request(t.admin, { method: "GET", url: `/api/email-servers/${server.id}` });
          expect(view.json().settings.certificateThumbprint).toBe(createHash("sha1").update(der).digest("hex").toUpperCase());
          expect(view.json().settings.privateKey).toEqual({ set: true });
        }
        if (method === "service_account") {
          // Verified with the service account's public key: RFC 7523 claims, the mailbox as subject.
          expect(check?.header).toMatchObject({ alg: "RS256", kid: "0123456789abcdef" });
          expect(check?.claims).toMatchObject({ iss: SA_EMAIL, sub: FROM, scope: GMAIL_APP_SCOPE, aud: `${provider.url}/token` });
          expect(Number(check?.claims?.exp) - Number(check?.claims?.iat)).toBe(3600);
        }

        // The token ran out: one new request, then sending again.
        await t.mailroom.ctx.db
          .updateTable("oauth_tokens")
          .set({ access_expires_at: Date.now() - 1000, access_obtained_at: Date.now() - 3_601_000 })
          .where("server_id", "=", server.id)
          .execute();
        t.mailroom.oauth.tokens.forget(server.id);
        await t.mailroom.transports.forget(server.id);
        provider.issuer.next.push(() => queueMicrotask(acceptIssued));
        await sent(await send(server.id, "after expiry"));
        expect(provider.checked.length).toBe(checkedBefore + 2);
        await expectNoLeaks();
      },
    );

    it("two token stores on one database (two processes) make one token request between them", async () => {
      const server = (await createServer(methods[0])).json();
      const row = await t.mailroom.servers.getRow(server.id);
      const identity = { provider: kind, mailbox: FROM, version: row.updated_at };
      const stores = [t.mailroom.oauth.tokens, new TokenStore(t.mailroom.ctx, t.mailroom.servers)];
      const before = provider.checked.length;
      const tokens = await Promise.all(
        Array.from({ length: 40 }, (_, i) => stores[i % 2].appTokenProvider(server.id, identity).accessToken(false)),
      );
      expect(provider.checked.length).toBe(before + 1);
      expect(new Set(tokens).size).toBe(1);
    });

    it("a token the SMTP server refuses is replaced once, and the message goes out", async () => {
      const server = (await createServer(methods[0])).json();
      provider.issuer.next.push(() => queueMicrotask(acceptIssued));
      await sent(await send(server.id, "with the first token"));
      const before = provider.checked.length;
      // The server stops accepting the cached token (revoked at the provider): only the next one works.
      const fresh = `renewed-${Date.now()}`;
      peer.setAuth({ user: FROM, methods: ["XOAUTH2"], accessToken: fresh, tokenRejection: "outlook" });
      provider.issuer.next.push((response) => {
        response.body.access_token = fresh;
      });
      await t.mailroom.transports.forget(server.id);
      await sent(await send(server.id, "with a new token"));
      expect(provider.checked.length).toBe(before + 1);
      expect(peer.authAttempts.slice(-2).map((a) => a.ok)).toEqual([false, true]);
    });

    it("a message from a mailbox outside the allow-list is refused before the provider is called", async () => {
      const server = (await createServer(methods[0])).json();
      const res = await request(app, {
        method: "POST",
        url: "/api/messages",
        payload: { server: server.id, from: "ceo@example.com", to: "rcpt@example.net", subject: "x", text: "x" },
      });
      expect(res.statusCode).toBe(400);
      expect(res.json().code).toBe("from_not_allowed");
      // The transport's own guard, for any path that skips intake: no token asked for, no connection.
      const received = provider.received;
      const attempts = peer.authAttempts.length;
      const transport = t.mailroom.transports.get(await t.mailroom.servers.getRow(server.id));
      const error = await transport
        .send({
          id: "m1",
          messageId: "m1@example.com",
          from: { address: "ceo@example.com" },
          to: [{ address: "rcpt@example.net" }],
          cc: [],
          bcc: [],
          replyTo: [],
          subject: "x",
          text: "x",
          attachments: [],
          headers: {},
        })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DeliveryError);
      expect(error).toMatchObject({ code: "from_not_allowed", kind: "message" });
      expect(provider.received).toBe(received);
      expect(peer.authAttempts.length).toBe(attempts);
    });

    it("has nothing to authorize: 'Authorize account' is refused with the reason", async () => {
      const server = (await createServer(methods[0])).json();
      const res = await request(t.admin, { method: "POST", url: `/api/email-servers/${server.id}/oauth/authorize` });
      expect(res.json()).toMatchObject({ code: "oauth_not_supported" });
      expect(res.json().message).toContain("application credentials");
    });

    it("refuses settings that do not fit the method, naming the field", async () => {
      const wildcard = await createServer(methods[0], { allowedFromAddresses: ["*@example.com"] });
      expect(wildcard.statusCode).toBe(400);
      expect(wildcard.json()).toMatchObject({ code: "invalid_setting", details: [{ field: "settings.allowedFromAddresses" }] });
      if (kind === "microsoft") {
        const shared = await createServer("client_secret", { tenant: "organizations" });
        expect(shared.json()).toMatchObject({ code: "invalid_setting", details: [{ field: "settings.tenant" }] });
        const notPem = await createServer("certificate", { certificate: "not a certificate" });
        expect(notPem.json()).toMatchObject({ code: "invalid_setting", details: [{ field: "settings.certificate" }] });
        const injected = await createServer("client_secret", { clientSecret: "abc\r\nRCPT TO:<x@y>" });
        expect(injected.json()).toMatchObject({ code: "invalid_setting", details: [{ field: "settings.clientSecret" }] });
        // A certificate server needs no client secret; one given anyway is ignored, not stored.
        const ignored = await createServer("certificate", { clientSecret: "ignored-secret" });
        expect(ignored.statusCode, ignored.body).toBe(201);
        expect(ignored.json().settings.clientSecret).toEqual({ set: false });
      } else {
        for (const [key, problem] of [
          ["type", "user"],
          ["client_email", undefined],
          ["private_key", "not a key"],
        ] as const) {
          const broken = { ...JSON.parse(provider.serviceAccountKey), [key]: problem };
          const res = await createServer("service_account", { serviceAccountKey: JSON.stringify(broken) });
          expect(res.statusCode).toBe(400);
          expect(res.json()).toMatchObject({ code: "invalid_setting", details: [{ field: "settings.serviceAccountKey" }] });
          expect(res.body).not.toContain("BEGIN PRIVATE KEY");
        }
        const missing = await createServer("service_account", { serviceAccountKey: undefined });
        expect(missing.json()).toMatchObject({ status: "incomplete", missingSettings: ["serviceAccountKey"] });
      }
      await expectNoLeaks();
    });

    const refusals: { name: string; settings?: Record<string, string>; from?: string; says: string[] }[] =
      kind === "microsoft"
        ? [
            {
              name: "a wrong client secret",
              settings: { clientSecret: "wrong-secret-value" },
              says: ["AADSTS7000215", "Value (not its Secret ID)"],
            },
            {
              name: "a tenant that does not exist",
              settings: { tenant: "nowhere.example" },
              says: ["AADSTS90002", "Directory (tenant) ID"],
            },
            {
              name: "an app not in the tenant",
              settings: { clientId: "00000000-0000-0000-0000-000000000000" },
              says: ["AADSTS700016", "consented"],
            },
          ]
        : [
            {
              name: "a mailbox without domain-wide delegation",
              from: "other@example.com",
              says: ["unauthorized_client", `client ID ${SA_CLIENT_ID}`, GMAIL_APP_SCOPE],
            },
          ];

    it.each(refusals)("check connection names the fix for $name", async ({ settings, from, says }) => {
      const method = methods[0];
      const res = await request(t.admin, {
        method: "POST",
        url: "/api/email-servers/test",
        payload: {
          mode: "check",
          to: "rcpt@example.net",
          server: {
            name: "draft",
            driver,
            fromAddress: from ?? FROM,
            settings: {
              host: "localhost",
              port: peer.port,
              security: "starttls",
              authMethod: method,
              ...credentials(method),
              ...settings,
            },
          },
        },
      });
      expect(res.statusCode, res.body).toBe(200);
      const report = res.json();
      expect(report.ok).toBe(false);
      expect(report.steps).toEqual([expect.objectContaining({ step: "token", ok: false })]);
      expect(report.error.code).toBe("oauth_app_rejected");
      for (const words of says) expect(report.error.message).toContain(words);
      await expectNoLeaks();
    });

    it("check connection proves the token and the SMTP login without sending", async () => {
      const server = (await createServer(methods[0])).json();
      provider.issuer.next.push(() => queueMicrotask(acceptIssued));
      const res = await request(t.admin, {
        method: "POST",
        url: `/api/email-servers/${server.id}/test`,
        payload: { mode: "check", to: "rcpt@example.net" },
      });
      const report = res.json();
      expect(report.steps[0]).toMatchObject({ step: "token", ok: true });
      expect(report.ok, JSON.stringify(report.steps)).toBe(true);
      expect(peer.received).toHaveLength(0);
      // A test never stores a token: delivery gets its own.
      expect((await tokenRow(server.id))?.access_token ?? null).toBeNull();
    });

    it("a refused credential while mail is queued: the server is failing with the fix, nothing is sent", async () => {
      const server = (await createServer(methods[0], kind === "microsoft" ? { clientSecret: "wrong-secret-value" } : {})).json();
      if (kind === "google") provider.delegatedMailboxes.delete(FROM);
      try {
        const id = await send(server.id, "refused");
        const view = await waitFor("the server to be failing", async () => {
          const res = await request(t.admin, { method: "GET", url: `/api/email-servers/${server.id}` });
          return res.json().status === "failing" ? (res.json() as { statusDetail: string }) : null;
        });
        expect(view.statusDetail).toContain(kind === "microsoft" ? "AADSTS7000215" : "Domain-wide delegation");
        await waitFor("the attempt to be recorded", async () => (await messageRow(id)).last_error_code === "oauth_app_rejected");
        expect(peer.received).toHaveLength(0);
      } finally {
        provider.delegatedMailboxes.add(FROM);
      }
    });
  });
});
