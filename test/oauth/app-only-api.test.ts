/**
 * App-only credentials on the providers' HTTP API drivers, end to end through the queue and
 * the real delivery worker: Microsoft Graph with a client secret or a certificate (scope
 * `https://graph.microsoft.com/.default`, each message sent as its From mailbox), the Gmail API
 * with a service account impersonating the server's from address (`sub`, scope gmail.send,
 * `users/me`). The token endpoint verifies each assertion (test/oauth/app-issuer.ts); the API
 * peers accept only the tokens it minted. Also: the allow-list refuses a From before any token
 * request, check connection's token step, and secrets nowhere in answers, logs or the database.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { systemActor } from "../../src/core/audit.js";
import { DeliveryError } from "../../src/kernel/transport.js";
import { type Caller, startTestApp, type TestApp } from "../helpers/app.js";
import { availableDialects } from "../helpers/databases.js";
import { waitFor } from "../helpers/wait.js";
import { type GmailApiPeer, startGmailApiPeer } from "../peers/gmail-api-peer.js";
import { type GraphPeer, startGraphPeer } from "../peers/graph-peer.js";
import { APP_CLIENT_ID, APP_SECRET, type AppIssuer, SA_EMAIL, startAppIssuer } from "./app-issuer.js";
import { TENANT_ID } from "./issuer.js";

const FROM = "sender@example.com";
const ALIAS = "alias@example.com";
const GRAPH_APP_SCOPE = "https://graph.microsoft.com/.default";
const GMAIL_SEND = "https://www.googleapis.com/auth/gmail.send";

/** What one API peer recorded: the mailbox each message went out as, from the request path. */
interface ApiPeer {
  url: string;
  env: Record<string, string>;
  accept(accepts: (token: string) => boolean): void;
  /** The mailbox path segment of each send (`me` for Gmail). */
  sentAs(): string[];
  requests(): number;
  close(): Promise<void>;
}

const drivers = [
  { driver: "microsoft-graph", kind: "microsoft", scope: GRAPH_APP_SCOPE, methods: ["client_secret", "certificate"] },
  { driver: "gmail-api", kind: "google", scope: GMAIL_SEND, methods: ["service_account"] },
] as const;

async function startApiPeer(driver: string): Promise<ApiPeer> {
  if (driver === "microsoft-graph") {
    const graph: GraphPeer = await startGraphPeer();
    return {
      url: graph.url,
      env: { MAILROOM_MICROSOFT_GRAPH_URL: graph.url },
      accept: (accepts) => {
        graph.acceptsToken = accepts;
      },
      sentAs: () => graph.sent.map((s) => s.mailbox),
      requests: () => graph.requests.length,
      close: () => graph.close(),
    };
  }
  const gmail: GmailApiPeer = await startGmailApiPeer(FROM);
  return {
    url: gmail.url,
    env: { MAILROOM_GOOGLE_GMAIL_API_URL: gmail.url },
    accept: (accepts) => {
      gmail.acceptsToken = accepts;
    },
    sentAs: () => gmail.sent.map(() => "me"),
    requests: () => gmail.requests.length,
    close: () => gmail.close(),
  };
}

describe.each(await availableDialects())("app-only credentials on the HTTP API drivers on %s", (dialect) => {
  describe.each(drivers)("$driver", ({ driver, kind, scope, methods }) => {
    let provider: AppIssuer;
    let peer: ApiPeer;
    let t: TestApp;
    let app: Caller;
    const answers: string[] = [];

    beforeAll(async () => {
      provider = await startAppIssuer(kind, scope);
      peer = await startApiPeer(driver);
      peer.accept((token) => provider.issuer.issued.includes(token));
      t = await startTestApp(dialect, {
        ...provider.env,
        ...peer.env,
        MAILROOM_POLL_MS: "20",
        MAILROOM_RETRY_SCHEDULE: "0.05",
      });
      const { token } = await t.mailroom.tokens.create({ name: "app", permissions: ["messages.send"] }, systemActor, null);
      app = { headers: { authorization: `Bearer ${token}` } };
      t.mailroom.worker.start();
    });
    afterAll(async () => {
      await t?.close();
      await peer?.close();
      await provider?.stop();
    });

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
    const createServer = (method: string, extra: Record<string, unknown> = {}) =>
      request(t.admin, {
        method: "POST",
        url: "/api/email-servers",
        payload: {
          name: `${driver} app ${++servers}`,
          driver,
          fromAddress: FROM,
          settings: { authMethod: method, allowedFromAddresses: [ALIAS], ...credentials(method), ...extra },
        },
      });

    async function send(server: string, subject: string, from = FROM): Promise<string> {
      const res = await request(app, {
        method: "POST",
        url: "/api/messages",
        payload: { server, from, to: "rcpt@example.net", subject, text: "x" },
      });
      expect(res.statusCode, res.body).toBe(202);
      return res.json().id;
    }
    const sent = (id: string) =>
      waitFor(`message ${id} sent`, async () => {
        const row = await t.mailroom.messages.getRow(id);
        if (row.status === "failed") throw new Error(`message ${id} failed: ${row.last_error_code}`);
        return row.status === "sent";
      });

    async function expectNoLeaks(): Promise<void> {
      const db = t.mailroom.ctx.db;
      const stored = JSON.stringify([
        await db.selectFrom("email_servers").selectAll().execute(),
        await db.selectFrom("oauth_tokens").selectAll().execute(),
        await db.selectFrom("audit_log").selectAll().execute(),
        await db.selectFrom("message_attempts").selectAll().execute(),
      ]);
      const keyBody = (pem: string) => pem.split("\n")[1] ?? pem;
      const secrets = [
        APP_SECRET,
        keyBody(provider.privateKey),
        keyBody(JSON.parse(provider.serviceAccountKey).private_key),
        ...provider.issuer.issued,
      ];
      for (const secret of secrets) {
        for (const [where, text] of [
          ["logs", t.logs.join("\n")],
          ["answers", answers.join("\n")],
          ["database", stored],
        ]) {
          if (text.includes(secret)) throw new Error(`a secret (${secret.slice(0, 12)}…) appears in ${where}`);
        }
      }
    }

    it.each(methods)("%s: ready without 'Authorize account', sends through the queue as the From mailbox", async (method) => {
      const res = await createServer(method);
      expect(res.statusCode, res.body).toBe(201);
      const server = res.json();
      expect(server.status).toBe("ready");
      const checkedBefore = provider.checked.length;
      const sentBefore = peer.sentAs().length;

      await sent(await send(server.id, "first"));
      await sent(await send(server.id, "from the alias", ALIAS));
      // One token for both messages, asked for with the driver's own app-only scope.
      expect(provider.checked.length).toBe(checkedBefore + 1);
      const check = provider.checked.at(-1);
      if (kind === "microsoft") {
        expect(check).toMatchObject({
          tenant: TENANT_ID,
          clientId: APP_CLIENT_ID,
          scope,
          auth: method === "certificate" ? "private_key_jwt" : "client_secret",
        });
        // The tenant-wide token sends as each message's own mailbox, never the path of another.
        expect(peer.sentAs().slice(sentBefore)).toEqual([FROM, ALIAS]);
      } else {
        // The service account impersonates the server's mailbox: `users/me` is it.
        expect(check).toMatchObject({ auth: "jwt-bearer", scope, claims: { iss: SA_EMAIL, sub: FROM } });
        expect(peer.sentAs().slice(sentBefore)).toEqual(["me", "me"]);
      }
      await expectNoLeaks();
    });

    it("a From outside the allow-list is refused before any token request", async () => {
      const server = (await createServer(methods[0])).json();
      const res = await request(app, {
        method: "POST",
        url: "/api/messages",
        payload: { server: server.id, from: "ceo@example.com", to: "rcpt@example.net", subject: "x", text: "x" },
      });
      expect(res.statusCode).toBe(400);
      expect(res.json().code).toBe("from_not_allowed");
      // The transport's own guard, for any path that skips intake: no token, no API request.
      const tokenRequests = provider.received;
      const apiRequests = peer.requests();
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
      expect(provider.received).toBe(tokenRequests);
      expect(peer.requests()).toBe(apiRequests);
    });

    it("check connection proves the token once, then reaches the mailbox, without sending", async () => {
      const server = (await createServer(methods[0])).json();
      const sentBefore = peer.sentAs().length;
      const res = await request(t.admin, {
        method: "POST",
        url: `/api/email-servers/${server.id}/test`,
        payload: { mode: "check", to: "rcpt@example.net" },
      });
      const report = res.json();
      expect(report.ok, JSON.stringify(report.steps)).toBe(true);
      expect(report.steps.map((s: { step: string }) => s.step)).toEqual(["token", "mailbox"]);
      expect(report.steps[1].detail).toContain(kind === "microsoft" ? FROM : "gmail.send only");
      expect(peer.sentAs()).toHaveLength(sentBefore);
      await expectNoLeaks();
    });

    it("check connection names the fix when the provider refuses the credential", async () => {
      const settings = kind === "microsoft" ? { clientSecret: "wrong-secret-value" } : {};
      const res = await request(t.admin, {
        method: "POST",
        url: "/api/email-servers/test",
        payload: {
          mode: "check",
          to: "rcpt@example.net",
          server: {
            name: "draft",
            driver,
            fromAddress: kind === "microsoft" ? FROM : "other@example.com",
            settings: { authMethod: methods[0], ...credentials(methods[0]), ...settings },
          },
        },
      });
      const report = res.json();
      expect(report.ok).toBe(false);
      expect(report.steps).toEqual([expect.objectContaining({ step: "token", ok: false })]);
      expect(report.error.code).toBe("oauth_app_rejected");
      expect(report.error.message).toContain(kind === "microsoft" ? "AADSTS7000215" : `the scope ${GMAIL_SEND}`);
      await expectNoLeaks();
    });

    if (kind === "microsoft") {
      it("refuses a shared tenant with application credentials, naming the field", async () => {
        const res = await createServer("client_secret", { tenant: "organizations" });
        expect(res.statusCode).toBe(400);
        expect(res.json()).toMatchObject({ code: "invalid_setting", details: [{ field: "settings.tenant" }] });
      });
    }
  });
});
