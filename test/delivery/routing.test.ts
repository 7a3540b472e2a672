import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { systemActor } from "../../src/core/audit.js";
import { type Caller, startTestApp, type TestApp } from "../helpers/app.js";
import { availableDialects } from "../helpers/databases.js";
import { waitFor } from "../helpers/wait.js";
import { type ProviderPeer, startProviderPeer } from "../peers/provider-peer.js";
import { type SmtpPeer, startSmtpPeer } from "../peers/smtp-peer.js";

const POSTMARK_TOKEN = "pm-server-token-0123456789";

interface Attempt {
  server: { name: string };
  outcome: string;
  errorCode: string | null;
}

describe.each(await availableDialects())("routing and failover on %s", (dialect) => {
  let t: TestApp;
  let primary: SmtpPeer;
  let backup: SmtpPeer;
  let provider: ProviderPeer;
  let app: Caller;
  let appTokenId: string;
  let n = 0;

  beforeAll(async () => {
    primary = await startSmtpPeer({ security: "none", auth: { user: "app", password: "right-password" } });
    backup = await startSmtpPeer({ security: "none", auth: { user: "app", password: "right-password" } });
    provider = await startProviderPeer({ postmark: { serverToken: POSTMARK_TOKEN, confirmedSenders: ["@example.com"] } });
    t = await startTestApp(dialect, {
      MAILROOM_POLL_MS: "20",
      MAILROOM_RETRY_SCHEDULE: "0.05,0.05",
      MAILROOM_MAX_ATTEMPTS: "2",
      MAILROOM_BREAKER_THRESHOLD: "2",
      // Probes only when an edit asks for one: a test decides when a server recovers.
      MAILROOM_PROBE_SCHEDULE: "600",
      MAILROOM_ALLOWED_ENDPOINTS: provider.url,
    });
    const { token, view } = await t.mailroom.tokens.create(
      { name: "app", permissions: ["messages.send", "messages.view"] },
      systemActor,
      null,
    );
    appTokenId = view.id;
    app = { headers: { authorization: `Bearer ${token}` } };
    t.mailroom.worker.start();
  });
  afterAll(async () => {
    await t.close();
    await primary.close();
    await backup.close();
    await provider.close();
  });
  afterEach(() => {
    primary.setFaults({});
    backup.setFaults({});
    primary.clear();
    backup.clear();
  });

  /** A fresh SMTP server on `peer`, sending as anything @example.com unless told otherwise. */
  async function smtpServer(peer: SmtpPeer, settings: Record<string, unknown> = {}) {
    return t.mailroom.servers.create(
      {
        name: `smtp-${dialect}-${++n}`,
        driver: "smtp",
        fromAddress: "app@example.com",
        settings: {
          host: "127.0.0.1",
          port: peer.port,
          security: "none",
          username: "app",
          password: "right-password",
          timeoutSeconds: 5,
          allowedFromAddresses: ["*@example.com"],
          ...settings,
        },
      },
      systemActor,
    );
  }

  async function route(match: Record<string, unknown>, servers: string[]) {
    const res = await t.request(t.admin, {
      method: "POST",
      url: "/api/routes",
      payload: { name: `route-${dialect}-${++n}`, match, servers },
    });
    expect(res.statusCode, res.body).toBe(201);
    return res.json();
  }

  async function send(body: Record<string, unknown>) {
    const res = await t.request(app, {
      method: "POST",
      url: "/api/messages",
      payload: { to: "someone@example.net", subject: "routing", text: "x", ...body },
    });
    expect(res.statusCode, res.body).toBe(202);
    return res.json().id as string;
  }

  async function settled(id: string) {
    return waitFor(`message ${id} to settle`, async () => {
      const m = (await t.request(app, { method: "GET", url: `/api/messages/${id}` })).json();
      return ["sent", "failed", "held"].includes(m.status) ? m : null;
    });
  }

  function trail(attempts: Attempt[]) {
    return attempts.map((a) => `${a.server.name}:${a.outcome}${a.errorCode ? `:${a.errorCode}` : ""}`);
  }

  it("sends through the backup when the primary refuses the login, and opens the primary's breaker", async () => {
    const p = await smtpServer(primary, { password: "wrong-password" });
    const b = await smtpServer(backup);
    await route({ tag: "login" }, [p.name, b.name]);
    const first = await settled(await send({ tag: "login", from: "news@example.com" }));
    expect(first.status).toBe("sent");
    expect(first.server.name).toBe(b.name);
    expect(first.route).toMatch(/^route-/);
    expect(trail(first.attempts)).toEqual([`${p.name}:server:smtp_auth_failed`, `${b.name}:sent`]);
    expect(backup.received).toHaveLength(1);
    expect(primary.received).toHaveLength(0);

    // The second refusal in a row opens the primary's breaker (threshold 2).
    const second = await settled(await send({ tag: "login", from: "news@example.com" }));
    expect(second.status).toBe("sent");
    expect((await t.mailroom.servers.get(p.id)).status).toBe("failing");
    // Once it is open, new mail goes to the backup from the start, without a connection to the primary.
    const logins = primary.authAttempts.length;
    const third = await settled(await send({ tag: "login", from: "news@example.com" }));
    expect(third.status).toBe("sent");
    expect(trail(third.attempts)).toEqual([`${b.name}:sent`]);
    expect(primary.authAttempts.length).toBe(logins);
    expect(backup.received).toHaveLength(3);
  });

  it("moves on after the primary's retries of a 451 are spent", async () => {
    const p = await smtpServer(primary);
    const b = await smtpServer(backup);
    await route({ tag: "busy" }, [p.name, b.name]);
    primary.setFaults({ failMessages: { times: 100, code: 451, message: "4.3.0 Try again later" } });
    const m = await settled(await send({ tag: "busy" }));
    expect(m.status).toBe("sent");
    expect(trail(m.attempts)).toEqual([
      `${p.name}:transient:temporary_failure`,
      `${p.name}:transient:temporary_failure`,
      `${b.name}:sent`,
    ]);
    expect(backup.received).toHaveLength(1);
  });

  it("moves on at once when the primary rate-limits (HTTP 429)", async () => {
    const p = await t.mailroom.servers.create(
      {
        name: `postmark-${dialect}-${++n}`,
        driver: "postmark",
        fromAddress: "app@example.com",
        settings: { serverToken: POSTMARK_TOKEN, baseUrl: provider.url, allowedFromAddresses: ["*@example.com"] },
      },
      systemActor,
    );
    const b = await smtpServer(backup);
    await route({ tag: "limited" }, [p.name, b.name]);
    provider.failNext(1, { status: 429, headers: { "retry-after": "600" }, body: '{"ErrorCode":429,"Message":"slow down"}' });
    const m = await settled(await send({ tag: "limited" }));
    expect(m.status).toBe("sent");
    expect(trail(m.attempts)).toEqual([`${p.name}:rate_limited:provider_rate_limited`, `${b.name}:sent`]);
    expect(backup.received).toHaveLength(1);
  });

  it("fails a recipient refused with 550 without trying the backup", async () => {
    const p = await smtpServer(primary);
    const b = await smtpServer(backup);
    await route({ tag: "gone" }, [p.name, b.name]);
    primary.setFaults({ rejectRecipients: ["gone@example.net"] });
    const m = await settled(await send({ tag: "gone", to: "gone@example.net" }));
    expect(m.status).toBe("failed");
    expect(trail(m.attempts)).toEqual([`${p.name}:recipient:recipient_rejected`]);
    expect(backup.received).toHaveLength(0);
  });

  it("chooses the route by From domain, by token and by tag; the first match wins, no match is the default", async () => {
    const a = await smtpServer(primary, { allowedFromAddresses: ["*@billing.example.org"] });
    const b = await smtpServer(backup, { allowedFromAddresses: ["*@example.com", "*@billing.example.org"] });
    await route({ from: "billing.example.org" }, [a.name]);
    await route({ token: appTokenId, tag: "by-token" }, [b.name]);
    await route({ tag: "by-tag" }, [a.name]);

    const byDomain = await settled(await send({ from: "invoices@billing.example.org" }));
    expect(byDomain.server.name).toBe(a.name);
    const byToken = await settled(await send({ tag: "by-token" }));
    expect(byToken.server.name).toBe(b.name);
    const byTag = await settled(await send({ tag: "by-tag" }));
    expect(byTag.server.name).toBe(a.name);
    const unrouted = await settled(await send({ tag: "nothing-matches" }));
    expect(unrouted.route).toBeNull();
    expect(unrouted.server.name).toBe((await t.mailroom.servers.list()).items.find((s) => s.isDefault)?.name);
    // A session (not the token) does not match the token's rule.
    const res = await t.request(t.admin, {
      method: "POST",
      url: "/api/messages",
      payload: { to: "x@example.net", subject: "s", tag: "by-token" },
    });
    expect((await t.mailroom.messages.getRow(res.json().id)).route_name).toBeNull();
  });

  it("refuses at accept time a From that no server of the route may send, storing nothing", async () => {
    const p = await smtpServer(primary, { allowedFromAddresses: [] });
    const b = await smtpServer(backup, { allowedFromAddresses: [] });
    await route({ tag: "strict" }, [p.name, b.name]);
    const before = (await t.mailroom.messages.list({})).total;
    const res = await t.request(app, {
      method: "POST",
      url: "/api/messages",
      payload: { to: "x@example.net", subject: "s", tag: "strict", from: "ceo@example.com" },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: "from_not_allowed", details: { field: "from" } });
    expect(res.json().message).toContain(p.name);
    expect(res.json().message).toContain("ceo@example.com");
    expect((await t.mailroom.messages.list({})).total).toBe(before);
  });

  it("hands the message to a server that may send its From, skipping one that may not", async () => {
    const p = await smtpServer(primary, { allowedFromAddresses: [] });
    const b = await smtpServer(backup);
    await route({ tag: "sender" }, [p.name, b.name]);
    const m = await settled(await send({ tag: "sender", from: "other@example.com" }));
    expect(m.server.name).toBe(b.name);
    expect(primary.received).toHaveLength(0);
  });

  it("skips a server at its daily limit for the next one", async () => {
    const p = await smtpServer(primary, { messagesPerDay: 1 });
    const b = await smtpServer(backup);
    await route({ tag: "daily" }, [p.name, b.name]);
    const first = await settled(await send({ tag: "daily" }));
    expect(first.server.name).toBe(p.name);
    const second = await settled(await send({ tag: "daily" }));
    expect(second.status).toBe("sent");
    expect(trail(second.attempts)).toEqual([`${p.name}:skipped:daily_limit_reached`, `${b.name}:sent`]);
    expect(primary.received).toHaveLength(1);
    expect(backup.received).toHaveLength(1);
    // The overview shows it.
    const stats = (await t.request(t.admin, { method: "GET", url: "/api/stats" })).json();
    expect(stats.dailyLimitReached).toContainEqual({ id: p.id, name: p.name, sent: 1, limit: 1 });
  });

  it("holds a message only when no server of its route can take it, and sends it when one recovers", async () => {
    const p = await smtpServer(primary, { password: "wrong-password" });
    const b = await smtpServer(backup, { password: "wrong-password" });
    await route({ tag: "both-down" }, [p.name, b.name]);
    const id = await send({ tag: "both-down" });
    const held = await settled(id);
    expect(held.status).toBe("held");
    expect(primary.received).toHaveLength(0);
    expect(backup.received).toHaveLength(0);
    // The primary is fixed: its probe passes and the held message goes through it.
    await t.mailroom.servers.setSetting(p.id, "password", "right-password", systemActor);
    await waitFor("the held message to go out", async () => (await t.mailroom.messages.getRow(id)).status === "sent");
    const m = await settled(id);
    expect(m.server.name).toBe(p.name);
    expect(primary.received).toHaveLength(1);
  });

  it("keeps a message that names its server on that server", async () => {
    const p = await smtpServer(primary, { password: "wrong-password" });
    const b = await smtpServer(backup);
    await route({ tag: "named" }, [p.name, b.name]);
    const m = await settled(await send({ tag: "named", server: p.name }));
    expect(m.route).toBeNull();
    expect(m.server.name).toBe(p.name);
    expect(backup.received).toHaveLength(0);
    await t.mailroom.servers.setSetting(p.id, "password", "right-password", systemActor);
  });
});
