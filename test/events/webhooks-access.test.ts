/**
 * Webhooks from an attacker's side: a token sees and hears only of its own; a user needs
 * "View messages" to hear of every message; a revoked token's webhook falls silent; bad input
 * stores nothing; the secret is shown once and is nowhere else; internal addresses are refused.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { reencryptWebhookSecrets } from "../../src/events/webhooks/key-rotation.js";
import { isInternalAddress, postWebhook } from "../../src/events/webhooks/post.js";
import { generateKeyText, parseKey, SecretBox } from "../../src/storage/secrets.js";
import { type Caller, startTestApp, type TestApp } from "../helpers/app.js";
import { waitFor } from "../helpers/wait.js";
import { type Receiver, startReceiver, verifySignature } from "./receiver.js";

describe("who sees and hears what", () => {
  let t: TestApp;
  let receiver: Receiver;
  const tokens: Record<string, { caller: Caller; id: string }> = {};

  beforeAll(async () => {
    receiver = await startReceiver();
    // Only the receiver's own port on loopback: any other internal address stays refused.
    t = await startTestApp("sqlite", { MAILROOM_POLL_MS: "20", MAILROOM_ALLOWED_ENDPOINTS: `127.0.0.1:${receiver.port}` });
    for (const name of ["A", "B", "C", "D"]) {
      const res = await t.request(t.admin, {
        method: "POST",
        url: "/api/tokens",
        payload: { name, permissions: name === "D" ? ["messages.send"] : ["messages.send", "webhooks.manage"] },
      });
      expect(res.statusCode, res.body).toBe(201);
      tokens[name] = { caller: { headers: { authorization: `Bearer ${res.json().token}` } }, id: res.json().id };
    }
    t.mailroom.worker.start();
    t.mailroom.webhooks.dispatcher.start();
  });
  afterAll(async () => {
    await t?.close();
    await receiver?.close();
  });

  async function register(caller: Caller, path: string, events = ["queued"]) {
    const res = await t.request(caller, {
      method: "POST",
      url: "/api/webhooks",
      payload: { url: `${receiver.url}${path}`, events },
    });
    expect(res.statusCode, res.body).toBe(201);
    return res.json() as { id: string; secret: string };
  }

  async function send(caller: Caller): Promise<string> {
    const res = await t.request(caller, {
      method: "POST",
      url: "/api/messages",
      payload: { to: "x@example.com", subject: "S", text: "T" },
    });
    expect(res.statusCode, res.body).toBe(202);
    return res.json().id;
  }

  const at = (path: string) => receiver.received.filter((r) => r.path === path);

  it("a token sees and hears of its own messages only; another token gets 404 for all of it", async () => {
    const a = await register(tokens.A.caller, "/a");
    const fromB = await send(tokens.B.caller);
    const fromA = await send(tokens.A.caller);
    await waitFor("A's event", async () => at("/a").length >= 1);
    await waitFor("everything sent", async () => (await t.mailroom.messages.getRow(fromB)).status === "sent");
    expect(at("/a").map((r) => r.json.data.id)).toEqual([fromA]);

    const b = tokens.B.caller;
    expect((await t.request(b, { method: "GET", url: "/api/webhooks" })).json()).toEqual({ items: [], total: 0 });
    const delivery = (
      await t.mailroom.ctx.db
        .selectFrom("webhook_deliveries")
        .select("id")
        .where("webhook_id", "=", a.id)
        .executeTakeFirstOrThrow()
    ).id;
    for (const [method, url, payload] of [
      ["GET", `/api/webhooks/${a.id}`],
      ["PATCH", `/api/webhooks/${a.id}`, { enabled: false }],
      ["DELETE", `/api/webhooks/${a.id}`],
      ["GET", `/api/webhooks/${a.id}/deliveries`],
      ["POST", `/api/webhooks/${a.id}/test`],
      ["POST", `/api/webhooks/${a.id}/rotate-secret`],
    ] as const) {
      const res = await t.request(b, { method, url, ...(payload ? { payload } : {}) });
      expect(res.statusCode, `${method} ${url}`).toBe(404);
      expect(res.json().code).toBe("webhook_not_found");
    }
    const replay = await t.request(b, { method: "POST", url: `/api/webhook-deliveries/${delivery}/replay` });
    expect(replay.statusCode).toBe(404);
    expect(replay.json().code).toBe("webhook_delivery_not_found");
    // Still A's, unchanged.
    expect((await t.request(tokens.A.caller, { method: "GET", url: `/api/webhooks/${a.id}` })).json()).toMatchObject({
      enabled: true,
    });

    // Without the permission: 403 before anything.
    const d = await t.request(tokens.D.caller, { method: "GET", url: "/api/webhooks" });
    expect(d.statusCode).toBe(403);
  });

  it("a user needs View messages, and then hears of every message; a super admin sees every webhook", async () => {
    const narrow = await t.userWith(["webhooks.manage"]);
    const refused = await t.request(narrow, {
      method: "POST",
      url: "/api/webhooks",
      payload: { url: `${receiver.url}/u`, events: ["queued"] },
    });
    expect(refused.statusCode).toBe(403);
    expect(refused.json()).toMatchObject({ code: "forbidden", details: { permission: "messages.view" } });

    const viewer = await t.userWith(["webhooks.manage", "messages.view"]);
    await register(viewer, "/u");
    const ids = [await send(tokens.A.caller), await send(tokens.B.caller)];
    await waitFor("both messages' events", async () => ids.every((id) => at("/u").some((r) => r.json.data.id === id)));

    const all = await t.request(t.admin, { method: "GET", url: "/api/webhooks" });
    expect(all.json().items.map((w: { url: string }) => new URL(w.url).pathname)).toEqual(expect.arrayContaining(["/a", "/u"]));
    const mine = await t.request(viewer, { method: "GET", url: "/api/webhooks" });
    expect(mine.json().items.map((w: { url: string }) => new URL(w.url).pathname)).toEqual(["/u"]);
  });

  it("a revoked token's webhook falls silent: its pending event fails, its next ones are not recorded", async () => {
    const c = await register(tokens.C.caller, "/c", ["queued", "sent"]);
    await t.mailroom.webhooks.dispatcher.stop();
    await t.mailroom.worker.stop();
    const id = await send(tokens.C.caller);
    const revoked = await t.request(t.admin, { method: "DELETE", url: `/api/tokens/${tokens.C.id}` });
    expect(revoked.statusCode, revoked.body).toBe(204);
    t.mailroom.worker.start();
    t.mailroom.webhooks.dispatcher.start();
    await waitFor("its pending event failed", async () => {
      const row = await t.mailroom.ctx.db
        .selectFrom("webhook_deliveries")
        .selectAll()
        .where("webhook_id", "=", c.id)
        .executeTakeFirst();
      return row?.status === "failed" && row.last_error?.includes("revoked");
    });
    await waitFor("sent", async () => (await t.mailroom.messages.getRow(id)).status === "sent");
    // Sent after the revocation: nothing recorded for the silent webhook (only the queued event, failed).
    const rows = await t.mailroom.ctx.db
      .selectFrom("webhook_deliveries")
      .select("event_type")
      .where("webhook_id", "=", c.id)
      .execute();
    expect(rows.map((r) => r.event_type)).toEqual(["queued"]);
    expect((await t.request(t.admin, { method: "GET", url: `/api/webhooks/${c.id}` })).json()).toMatchObject({
      active: false,
      silencedBecause: expect.stringContaining("revoked"),
    });
    expect(at("/c")).toHaveLength(0);
  });

  it("refuses bad input with a code naming the fix, and stores nothing", async () => {
    const a = tokens.A.caller;
    const before = (await t.mailroom.ctx.db.selectFrom("webhooks").select("id").execute()).length;
    const cases: [unknown, number, string][] = [
      [{ url: `${receiver.url}/x`, events: ["sent"], secret: "mine" }, 400, "unknown_field"],
      [{ url: `${receiver.url}/x` }, 400, "validation_failed"],
      [{ url: 42, events: ["sent"] }, 400, "validation_failed"],
      [{ url: "ftp://example.com/x", events: ["sent"] }, 400, "validation_failed"],
      [{ url: "not a url", events: ["sent"] }, 400, "validation_failed"],
      [{ url: "https://user:pass@example.com/x", events: ["sent"] }, 400, "validation_failed"],
      [{ url: "https://example.com/x#frag", events: ["sent"] }, 400, "validation_failed"],
      [{ url: `https://example.com/${"x".repeat(2001)}`, events: ["sent"] }, 400, "validation_failed"],
      [{ url: "https://example.com/x\r\nX-Evil: 1", events: ["sent"] }, 400, "control_characters"],
      [{ url: "https://example.com/x", events: [] }, 400, "validation_failed"],
      [{ url: "https://example.com/x", events: ["opened"] }, 400, "validation_failed"],
      [{ url: "https://example.com/x", events: "sent" }, 400, "validation_failed"],
      [{ url: "https://example.com/x", events: ["sent"], description: "d".repeat(501) }, 400, "validation_failed"],
      [{ url: "https://example.com/x", events: ["sent"], enabled: "yes" }, 400, "validation_failed"],
      // Internal addresses: link-local and metadata, loopback and private ranges the operator did not list.
      [{ url: "http://169.254.169.254/latest/meta-data", events: ["sent"] }, 400, "endpoint_not_allowed"],
      [{ url: "http://[fe80::1]/x", events: ["sent"] }, 400, "endpoint_not_allowed"],
      [{ url: "http://[::ffff:169.254.169.254]/x", events: ["sent"] }, 400, "endpoint_not_allowed"],
      [{ url: "http://127.0.0.1:1/x", events: ["sent"] }, 400, "endpoint_not_allowed"],
      [{ url: "http://10.0.0.7/x", events: ["sent"] }, 400, "endpoint_not_allowed"],
      [{ url: `http://localhost:${receiver.port}/x`, events: ["sent"] }, 400, "endpoint_not_allowed"],
    ];
    for (const [payload, status, code] of cases) {
      const res = await t.request(a, { method: "POST", url: "/api/webhooks", payload: payload as object });
      expect(res.statusCode, JSON.stringify(payload).slice(0, 80)).toBe(status);
      expect(res.json().code, JSON.stringify(payload).slice(0, 80)).toBe(code);
      expect(res.json().message.length).toBeGreaterThan(10);
    }
    const hook = await register(a, "/bad");
    for (const payload of [{ events: ["nope"] }, { url: "http://169.254.169.254/" }, { owner: "me" }, { enabled: 1 }]) {
      const res = await t.request(a, { method: "PATCH", url: `/api/webhooks/${hook.id}`, payload });
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
    }
    const query = await t.request(a, { method: "GET", url: `/api/webhooks/${hook.id}/deliveries?status=lost` });
    expect(query.statusCode).toBe(400);
    expect((await t.mailroom.ctx.db.selectFrom("webhooks").select("id").execute()).length).toBe(before + 1);
    expect((await t.request(a, { method: "GET", url: `/api/webhooks/${hook.id}` })).json()).toMatchObject({ events: ["queued"] });
  });

  it("shows the secret once: never in a list, a read, a delivery, the audit log, the logs or the database in plain", async () => {
    const a = tokens.A.caller;
    const hook = await register(a, "/secret", ["queued", "sent"]);
    expect(hook.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    await send(a);
    await waitFor("its events", async () => at("/secret").length >= 2);
    const rotated = await t.request(a, { method: "POST", url: `/api/webhooks/${hook.id}/rotate-secret` });
    expect(rotated.statusCode, rotated.body).toBe(200);
    const next = rotated.json().secret as string;
    expect(next).not.toBe(hook.secret);
    // During the overlap both secrets sign: receivers switch when they are ready.
    const ping = await t.request(a, { method: "POST", url: `/api/webhooks/${hook.id}/test` });
    expect(ping.json().status).toBe("delivered");
    const last = at("/secret").at(-1) as (typeof receiver.received)[number];
    expect(last.signature.split(" ")).toHaveLength(2);
    expect(verifySignature(next, last)).toBe(true);
    expect(verifySignature(hook.secret, last)).toBe(true);

    const replies = [
      await t.request(a, { method: "GET", url: "/api/webhooks" }),
      await t.request(a, { method: "GET", url: `/api/webhooks/${hook.id}` }),
      await t.request(a, { method: "PATCH", url: `/api/webhooks/${hook.id}`, payload: { description: "billing" } }),
      await t.request(a, { method: "GET", url: `/api/webhooks/${hook.id}/deliveries` }),
      ping,
      await t.request(t.admin, { method: "GET", url: "/api/audit?limit=500" }),
    ];
    const dump = JSON.stringify(
      await Promise.all(
        (["webhooks", "webhook_deliveries", "webhook_attempts", "audit_log"] as const).map((table) =>
          t.mailroom.ctx.db.selectFrom(table).selectAll().execute(),
        ),
      ),
    );
    for (const secret of [hook.secret, next]) {
      const key = secret.replace(/^whsec_/, "");
      for (const res of replies) expect(res.body).not.toContain(key);
      expect(t.logs.join("")).not.toContain(key);
      expect(dump).not.toContain(key);
      expect(receiver.received.some((r) => r.body.includes(key) || JSON.stringify(r.headers).includes(key))).toBe(false);
    }
    expect(dump).toContain("mr1:");
  });

  it("counts as internal every loopback, private, link-local, metadata, multicast and unspecified address", () => {
    for (const a of [
      "127.0.0.1",
      "10.1.2.3",
      "172.31.0.1",
      "192.168.1.1",
      "100.64.0.1",
      "169.254.169.254",
      "0.0.0.0",
      "224.0.0.1",
    ]) {
      expect(isInternalAddress(a), a).toBe(true);
    }
    for (const a of [
      "::1",
      "::",
      "fe80::1",
      "fd00::1",
      "fd00:ec2::254",
      "ff02::1",
      "::ffff:127.0.0.1",
      "::ffff:169.254.169.254",
    ]) {
      expect(isInternalAddress(a), a).toBe(true);
    }
    for (const a of ["93.184.216.34", "8.8.8.8", "172.32.0.1", "2606:4700::1111"]) expect(isInternalAddress(a), a).toBe(false);
  });

  it("re-encrypts signing secrets with a new key (mailroom keys rotate)", async () => {
    const hook = await register(tokens.A.caller, "/keys");
    const fresh = parseKey(generateKeyText(), "test");
    const both = new SecretBox([fresh, ...t.mailroom.ctx.secrets.keys]);
    const count = await t.mailroom.ctx.db.transaction().execute((trx) => reencryptWebhookSecrets(trx, both));
    expect(count).toBeGreaterThanOrEqual(1);
    const row = await t.mailroom.ctx.db.selectFrom("webhooks").selectAll().where("id", "=", hook.id).executeTakeFirstOrThrow();
    expect(new SecretBox([fresh]).decrypt(row.secret)).toBe(hook.secret);
    // Back to the app's key, so the rest of the file can still sign.
    await t.mailroom.ctx.db
      .transaction()
      .execute((trx) => reencryptWebhookSecrets(trx, new SecretBox([...t.mailroom.ctx.secrets.keys, fresh])));
  });

  it("refuses internal addresses when connecting too: a host name that resolves there, a URL that was allowed before", async () => {
    const operator = t.mailroom.ctx.config.operator;
    // localhost resolves to loopback; the allow-list names 127.0.0.1, not localhost.
    await expect(
      postWebhook({ url: `http://localhost:${receiver.port}/dns`, headers: {}, body: "{}", operator, redact: [] }),
    ).rejects.toMatchObject({ code: "endpoint_not_allowed" });
    await expect(
      postWebhook({ url: "http://169.254.169.254/latest", headers: {}, body: "{}", operator, redact: [] }),
    ).rejects.toMatchObject({
      code: "endpoint_not_allowed",
    });
    expect(at("/dns")).toHaveLength(0);

    // A webhook whose URL now points at the metadata service: its attempt is refused and recorded.
    const hook = await register(tokens.A.caller, "/moved");
    await t.mailroom.ctx.db
      .updateTable("webhooks")
      .set({ url: "http://169.254.169.254/hook" })
      .where("id", "=", hook.id)
      .execute();
    const res = await t.request(tokens.A.caller, { method: "POST", url: `/api/webhooks/${hook.id}/test` });
    expect(res.json()).toMatchObject({
      status: "failed",
      attemptLog: [{ httpStatus: null, error: expect.stringContaining("endpoint_not_allowed") }],
    });
  });

  it("deleting a webhook removes its deliveries, and is audited", async () => {
    const hook = await register(tokens.A.caller, "/gone");
    await send(tokens.A.caller);
    await waitFor("its event", async () => at("/gone").length >= 1);
    const res = await t.request(tokens.A.caller, { method: "DELETE", url: `/api/webhooks/${hook.id}` });
    expect(res.statusCode).toBe(204);
    const left = await t.mailroom.ctx.db
      .selectFrom("webhook_deliveries")
      .select("id")
      .where("webhook_id", "=", hook.id)
      .execute();
    expect(left).toEqual([]);
    const audit = (await t.request(t.admin, { method: "GET", url: "/api/audit?limit=500" })).json().items as { action: string }[];
    for (const action of ["webhook.create", "webhook.update", "webhook.delete", "webhook.rotate_secret"]) {
      expect(audit.map((e) => e.action)).toContain(action);
    }
  });
});
