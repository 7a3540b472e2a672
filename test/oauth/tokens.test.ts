import net from "node:net";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMailroom } from "../../src/app.js";
import { DeliveryError } from "../../src/kernel/transport.js";
import { refreshAllGrants, startOAuthHealthCheck } from "../../src/oauth/health.js";
import { TokenStore } from "../../src/oauth/token-store.js";
import { availableDialects } from "../helpers/databases.js";
import { waitFor } from "../helpers/wait.js";
import { FROM, type Harness, outcomeOf, startHarness } from "./harness.js";
import { answers } from "./issuer.js";

const dialects = await availableDialects();

async function rejection(promise: Promise<unknown>): Promise<DeliveryError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(DeliveryError);
  return error as DeliveryError;
}

describe.each(dialects)("Access tokens on %s", (dialect) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(dialect, "google");
  });
  afterAll(() => h?.close());

  const stored = async (id: string) => {
    const row = await h.tokenRow(id);
    const box = h.t.mailroom.ctx.secrets;
    return { row, access: box.decrypt(String(row?.access_token)), refresh: box.decrypt(String(row?.refresh_token)) };
  };

  /**
   * A token store on the harness's database whose clock the test moves, starting when the
   * server's access token was obtained; it is a second
   * TokenStore beside the app's, with its own cache and lease owner, like another process.
   */
  const clocked = async (serverId: string) => {
    // From the moment the token was obtained: how long the machine took since then does not count.
    const clock = { now: Number((await h.tokenRow(serverId))?.access_obtained_at) };
    const store = new TokenStore(h.t.mailroom.ctx, h.t.mailroom.servers, { now: () => clock.now });
    return { clock, store };
  };

  /** A server authorized with access tokens that live `seconds`. */
  async function authorizedServer(seconds = 3600): Promise<string> {
    const id = await h.createServer();
    h.issuer.lifetimeSeconds = seconds;
    try {
      expect(outcomeOf(await h.connect(id)).oauth).toBe("success");
    } finally {
      h.issuer.lifetimeSeconds = 3600;
    }
    return id;
  }

  it("500 concurrent requests right after expiry cause exactly one refresh", async () => {
    const id = await authorizedServer(2);
    const { clock, store } = await clocked(id);
    const tokens = store.tokenProvider(id);
    const first = await tokens.accessToken(false);
    clock.now += 2100;
    const before = h.issuer.refreshRequests().length;
    const results = await Promise.all(Array.from({ length: 500 }, () => tokens.accessToken(false)));
    expect(h.issuer.refreshRequests().length).toBe(before + 1);
    expect(new Set(results).size).toBe(1);
    expect(results[0]).not.toBe(first);
    expect((await stored(id)).access).toBe(results[0]);
    expect(Number((await stored(id)).row?.access_expires_at)).toBe(clock.now + 3600_000);
  });

  it("refreshes a token that expires between two sends before the second one", async () => {
    // Lifetime 2 s: fresh for its first half, refreshed ahead of expiry after that.
    const id = await authorizedServer(2);
    const { clock, store } = await clocked(id);
    const tokens = store.tokenProvider(id);
    const before = h.issuer.refreshRequests().length;
    const first = await tokens.accessToken(false);
    clock.now += 900;
    expect(await tokens.accessToken(false)).toBe(first);
    expect(h.issuer.refreshRequests().length).toBe(before);
    clock.now += 200;
    const second = await tokens.accessToken(false);
    expect(second).not.toBe(first);
    expect(h.issuer.refreshRequests().length).toBe(before + 1);
    expect(await tokens.accessToken(false)).toBe(second);
    expect(h.issuer.refreshRequests().length).toBe(before + 1);
  });

  it("renew forces one refresh, which concurrent renewals share", async () => {
    const id = await authorizedServer();
    const tokens = h.t.mailroom.oauth.tokenProvider(id);
    const first = await tokens.accessToken(false);
    const before = h.issuer.refreshRequests().length;
    const renewed = await Promise.all(Array.from({ length: 5 }, () => tokens.accessToken(true)));
    expect(h.issuer.refreshRequests().length).toBe(before + 1);
    expect(new Set(renewed).size).toBe(1);
    expect(renewed[0]).not.toBe(first);
    expect(await tokens.accessToken(false)).toBe(renewed[0]);
    expect(h.issuer.refreshRequests().length).toBe(before + 1);
  });

  it("keeps Google's refresh token when the refresh answer has none", async () => {
    const id = await authorizedServer();
    const { refresh } = await stored(id);
    await h.t.mailroom.oauth.tokenProvider(id).accessToken(true);
    expect(h.issuer.refreshRequests().at(-1)?.refreshToken).toBe(refresh);
    expect((await stored(id)).refresh).toBe(refresh);
  });

  it("invalid_grant makes the server reauthorization_required; a new authorization releases held mail", async () => {
    const id = await authorizedServer();
    const tokens = h.t.mailroom.oauth.tokenProvider(id);
    await insertHeldMessage(h, id);
    h.issuer.next.push(answers.invalidGrant());
    const error = await rejection(tokens.accessToken(true));
    expect(error).toMatchObject({ code: "oauth_reauthorization_required", kind: "reauthorization" });
    const server = await h.server(id);
    expect(server.status).toBe("reauthorization_required");
    expect(server.statusDetail).toContain("Google refused the refresh token on 20");
    expect(server.statusDetail).toContain("Token has been expired or revoked.");
    expect(server.statusDetail).toContain("Authorize account");
    expect(error.message).toBe(server.statusDetail);

    // Known dead: no more requests to the provider, whoever asks.
    const before = h.issuer.requests.length;
    expect(await rejection(tokens.accessToken(false))).toMatchObject({ kind: "reauthorization" });
    expect(await rejection(h.t.mailroom.oauth.tokens.refreshNow(id))).toMatchObject({ kind: "reauthorization" });
    expect(h.issuer.requests.length).toBe(before);

    expect(outcomeOf(await h.connect(id)).oauth).toBe("success");
    expect(await h.server(id)).toMatchObject({ status: "ready", statusDetail: null });
    const message = await h.t.mailroom.ctx.db
      .selectFrom("messages")
      .select("status")
      .where("server_id", "=", id)
      .executeTakeFirst();
    expect(message?.status).toBe("queued");
    expect(await tokens.accessToken(false)).toBe((await stored(id)).access);
  });

  it("a token endpoint that fails or hangs is transient, never a reason to re-authorize", async () => {
    const id = await authorizedServer();
    const tokens = h.t.mailroom.oauth.tokenProvider(id);
    h.issuer.next.push(answers.serverError(503));
    expect(await rejection(tokens.accessToken(true))).toMatchObject({ code: "oauth_token_unavailable", kind: "transient" });
    expect(await h.server(id)).toMatchObject({ status: "ready" });
    expect((await h.tokenRow(id))?.lease_owner).toBeNull();

    // A token endpoint that accepts the connection and never answers.
    const hanging = net.createServer(() => {});
    await new Promise<void>((resolve) => hanging.listen(0, "127.0.0.1", resolve));
    const port = (hanging.address() as net.AddressInfo).port;
    const { ctx, servers } = h.t.mailroom;
    const slowCtx = {
      ...ctx,
      config: { ...ctx.config, oauth: { ...ctx.config.oauth, googleTokenUrl: `http://127.0.0.1:${port}/token` } },
    };
    try {
      const store = new TokenStore(slowCtx, servers, { requestTimeoutSeconds: 1 });
      const started = Date.now();
      const error = await rejection(store.accessToken(id, true));
      expect(error).toMatchObject({ code: "oauth_token_unavailable", kind: "transient" });
      expect(error.message).toContain("timeout");
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      hanging.close();
    }
    expect(await h.server(id)).toMatchObject({ status: "ready" });
    // After the outage, the next refresh works.
    const renewed = await tokens.accessToken(true);
    expect(renewed).toBe((await stored(id)).access);
  });

  it("an expired client secret marks the server failing, not reauthorization_required", async () => {
    const id = await authorizedServer();
    h.issuer.next.push(answers.invalidClient());
    const error = await rejection(h.t.mailroom.oauth.tokenProvider(id).accessToken(true));
    expect(error).toMatchObject({ code: "oauth_invalid_client", kind: "server" });
    const server = await h.server(id);
    expect(server.status).toBe("failing");
    expect(server.statusDetail).toContain("client secret");
  });

  // Two stores in one process, each with its own cache and lease owner: what they share is
  // only the database, as two processes would (not two operating-system processes).
  it("two token stores sharing the database refresh once between them", async () => {
    const id = await authorizedServer(2);
    const { clock, store: mine } = await clocked(id);
    const theirs = new TokenStore(h.t.mailroom.ctx, h.t.mailroom.servers, { now: () => clock.now });
    clock.now += 2100;
    const before = h.issuer.refreshRequests().length;
    const [fromMine, fromTheirs] = await Promise.all([
      Promise.all(Array.from({ length: 100 }, () => mine.accessToken(id, false))),
      Promise.all(Array.from({ length: 100 }, () => theirs.accessToken(id, false))),
    ]);
    expect(h.issuer.refreshRequests().length).toBe(before + 1);
    expect(new Set([...fromMine, ...fromTheirs]).size).toBe(1);

    // A renewal in one store is one more refresh, answered with a new token.
    const renewed = await theirs.accessToken(id, true);
    expect(renewed).not.toBe(fromMine[0]);
    expect(h.issuer.refreshRequests().length).toBe(before + 2);
  });

  it("says when the authorization expires, and when the from address is not the account", async () => {
    h.issuer.grantLifetimeSeconds = 7 * 24 * 3600 - 1;
    const id = await authorizedServer().finally(() => {
      h.issuer.grantLifetimeSeconds = null;
    });
    const server = await h.server(id);
    expect(server.status).toBe("ready");
    expect(server.statusDetail).toMatch(/^The authorization expires in 7 days \(\d{4}-\d\d-\d\d\): authorize the account again/);
    expect(Number((await h.tokenRow(id))?.grant_expires_at)).toBeGreaterThan(Date.now() + 6 * 24 * 3600_000);
    expect(Date.parse(String(server.oauthExpiresAt))).toBeGreaterThan(Date.now() + 6 * 24 * 3600_000);

    const other = await h.createServer();
    await h.connect(other);
    await h.t.mailroom.ctx.db
      .updateTable("email_servers")
      .set({ from_address: "alias@example.com" })
      .where("id", "=", other)
      .execute();
    expect((await h.server(other)).statusDetail).toContain(`alias@example.com is not the authorized account ${FROM}`);
  });

  it("the health check refreshes every grant and finds a revoked one", async () => {
    // Everything before this test has been refreshed; these two are the oldest now.
    await h.t.mailroom.ctx.db.updateTable("oauth_tokens").set({ refresh_error_code: "invalid_grant" }).execute();
    const revoked = await authorizedServer();
    const healthy = await authorizedServer();
    await h.t.mailroom.ctx.db.updateTable("oauth_tokens").set({ refreshed_at: 1 }).where("server_id", "=", revoked).execute();
    await h.t.mailroom.ctx.db.updateTable("oauth_tokens").set({ refreshed_at: 2 }).where("server_id", "=", healthy).execute();
    h.issuer.next.push(answers.invalidGrant());
    const before = h.issuer.refreshRequests().length;
    const results = await refreshAllGrants(h.t.mailroom);
    expect(h.issuer.refreshRequests().length).toBe(before + 2);
    const byId = Object.fromEntries(results.map((r) => [r.serverId, r]));
    expect(byId[revoked]).toMatchObject({ outcome: "reauthorization_required", code: "oauth_reauthorization_required" });
    expect(byId[healthy]).toMatchObject({ outcome: "ok", account: FROM });
    expect((await h.server(revoked)).status).toBe("reauthorization_required");

    // Periodically, until stopped; grants refreshed within half an interval are skipped.
    await h.t.mailroom.ctx.db.updateTable("oauth_tokens").set({ refreshed_at: 1 }).where("server_id", "=", healthy).execute();
    const stop = startOAuthHealthCheck(h.t.mailroom, 60_000, { initialDelayMs: 0 });
    await waitFor("the periodic health check's refresh", async () => h.issuer.refreshRequests().length >= before + 3);
    await stop();
    expect(h.issuer.refreshRequests().length).toBe(before + 3);
    const skipped = await refreshAllGrants(h.t.mailroom, { minAgeMs: 60_000 });
    expect(skipped.find((r) => r.serverId === healthy)?.outcome).toBe("skipped");
    expect(h.issuer.refreshRequests().length).toBe(before + 3);
  });

  it("leaves no token or secret in logs, answers, audit entries or the database", async () => {
    await h.expectNoLeaks();
  });
});

describe.each(dialects)("Microsoft's rotating refresh tokens on %s", (dialect) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(dialect, "microsoft");
  });
  afterAll(() => h?.close());

  it("stores each rotated refresh token and uses it for the next refresh", async () => {
    const id = await h.createServer();
    await h.connect(id);
    const box = h.t.mailroom.ctx.secrets;
    const refreshOf = async () => box.decrypt(String((await h.tokenRow(id))?.refresh_token));
    const tokens = h.t.mailroom.oauth.tokenProvider(id);

    const r0 = await refreshOf();
    await tokens.accessToken(true);
    const first = h.issuer.refreshRequests().at(-1);
    expect(first?.refreshToken).toBe(r0);
    expect(first?.scope).toBe("https://outlook.office.com/SMTP.Send offline_access openid email");
    const r1 = await refreshOf();
    expect(r1).not.toBe(r0);
    expect(h.issuer.issued).toContain(r1);

    await tokens.accessToken(true);
    expect(h.issuer.refreshRequests().at(-1)?.refreshToken).toBe(r1);
    const r2 = await refreshOf();
    expect(r2).not.toBe(r1);

    // A new process (nothing in memory) continues with the latest one.
    const other = createMailroom(h.t.mailroom.ctx.config, pino({ level: "silent" }));
    try {
      await other.oauth.tokens.refreshNow(id);
      expect(h.issuer.refreshRequests().at(-1)?.refreshToken).toBe(r2);
    } finally {
      await other.close();
    }
    await h.expectNoLeaks();
  });
});

async function insertHeldMessage(h: Harness, serverId: string): Promise<void> {
  const now = Date.now();
  await h.t.mailroom.ctx.db
    .insertInto("messages")
    .values({
      id: `held-${now}`,
      server_id: serverId,
      server_name: "held",
      status: "held",
      from_address: FROM,
      from_name: "",
      recipients: JSON.stringify({ to: [{ address: "to@example.com" }], cc: [], bcc: [], replyTo: [] }),
      recipient_search: "to@example.com",
      subject: "held",
      payload: JSON.stringify({ text: "held", headers: {}, attachments: [] }),
      message_id: `held-${now}@example.com`,
      idempotency_scope: null,
      idempotency_key: null,
      attempts: 1,
      max_attempts: 6,
      next_attempt_at: now + 3600_000,
      lease_owner: null,
      last_error_code: "oauth_reauthorization_required",
      last_error: "held",
      provider_message_id: null,
      created_by: null,
      created_at: now,
      updated_at: now,
      sent_at: null,
    })
    .execute();
}
