/**
 * Application webhooks end to end: real messages through a real SMTP peer, their events
 * posted to a real HTTP receiver, signed (checked here as a receiver would), retried on the
 * schedule when the receiver fails (the injected clock moves, nothing sleeps), replayed from
 * the API, and a test ping.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { systemActor } from "../../src/core/audit.js";
import { RETRY_SCHEDULE_MS } from "../../src/events/webhooks/dispatcher.js";
import type { Caller, TestApp } from "../helpers/app.js";
import { startTestApp } from "../helpers/app.js";
import { availableDialects } from "../helpers/databases.js";
import { waitFor } from "../helpers/wait.js";
import { type SmtpPeer, startSmtpPeer } from "../peers/smtp-peer.js";
import { type ReceivedRequest, type Receiver, startReceiver, verifySignature } from "./receiver.js";

describe.each(await availableDialects())("application webhooks on %s", (dialect) => {
  let t: TestApp;
  let receiver: Receiver;
  let peer: SmtpPeer;
  let app: Caller;
  /** How far the app's clock is ahead of real time: the tests move it. */
  let ahead = 0;
  const now = () => Date.now() + ahead;

  beforeAll(async () => {
    receiver = await startReceiver();
    peer = await startSmtpPeer({ security: "none", faults: { rejectRecipients: ["nobody@example.com"] } });
    // Loopback is internal: only the operator's allow-list lets webhooks post there.
    t = await startTestApp(dialect, { MAILROOM_POLL_MS: "20", MAILROOM_ALLOWED_ENDPOINTS: "127.0.0.1" }, { clock: now });
    await t.mailroom.servers.create(
      {
        name: "Peer",
        driver: "smtp",
        fromAddress: "app@example.com",
        settings: { host: "127.0.0.1", port: peer.port, security: "none" },
      },
      systemActor,
    );
    const res = await t.request(t.admin, {
      method: "POST",
      url: "/api/tokens",
      payload: { name: "Billing", permissions: ["messages.send", "webhooks.manage"] },
    });
    expect(res.statusCode, res.body).toBe(201);
    app = { headers: { authorization: `Bearer ${res.json().token}` } };
    t.mailroom.worker.start();
    t.mailroom.webhooks.dispatcher.start();
  });
  afterAll(async () => {
    await t?.close();
    await receiver?.close();
    await peer?.close();
  });

  async function register(path: string, events: string[]): Promise<{ id: string; secret: string }> {
    const res = await t.request(app, {
      method: "POST",
      url: "/api/webhooks",
      payload: { url: `${receiver.url}${path}`, events },
    });
    expect(res.statusCode, res.body).toBe(201);
    return res.json();
  }

  async function send(to: string, server = "Peer"): Promise<string> {
    const res = await t.request(app, {
      method: "POST",
      url: "/api/messages",
      payload: { server, to, subject: "Invoice", text: "Hi." },
    });
    expect(res.statusCode, res.body).toBe(202);
    return res.json().id;
  }

  const at = (path: string) => receiver.received.filter((r) => r.path === path);
  const arrived = (path: string, n: number) =>
    waitFor(`${n} request(s) at ${path}`, async () => at(path).length >= n && at(path));

  async function deliveries(webhookId: string) {
    const res = await t.request(app, { method: "GET", url: `/api/webhooks/${webhookId}/deliveries` });
    expect(res.statusCode, res.body).toBe(200);
    return res.json().items as {
      id: string;
      type: string;
      status: string;
      attempts: number;
      nextAttemptAt: string | null;
      lastError: string | null;
      attemptLog: { at: string; httpStatus: number | null; error: string | null }[];
    }[];
  }

  /** Moves the clock past the next retry and wakes the dispatcher. */
  function advance(ms: number): void {
    ahead += ms;
    t.mailroom.webhooks.dispatcher.wake();
  }

  it("posts queued and sent, signed; retries after a 500 once the clock reaches the next step; the signature verifies", async () => {
    const hook = await register("/retried", ["queued", "sent"]);
    const seen = new Set<string>();
    receiver.answer = (r) => {
      if (r.path !== "/retried") return { status: 200 };
      // Each event's first attempt fails.
      const first = !seen.has(r.id);
      seen.add(r.id);
      return first ? { status: 500, body: "try later" } : { status: 200, body: "ok" };
    };
    const id = await send("someone@example.com");
    const firsts = await arrived("/retried", 2);
    expect(firsts.map((r) => r.json.type).sort()).toEqual(["message.queued", "message.sent"]);
    const waiting = await waitFor("both pending after the 500", async () => {
      const items = await deliveries(hook.id);
      // Settled: the attempt is in the log (while it runs, next_attempt_at is its lease's end).
      return items.length === 2 && items.every((d) => d.status === "pending" && d.attemptLog.length === 1) && items;
    });
    for (const d of waiting) {
      expect(d.lastError).toContain("HTTP 500");
      // The first step of the schedule, by the app's clock.
      expect(Date.parse(d.nextAttemptAt as string)).toBeGreaterThanOrEqual(now() + RETRY_SCHEDULE_MS[0] - 2000);
      expect(d.attemptLog).toEqual([expect.objectContaining({ httpStatus: 500 })]);
    }
    expect(at("/retried")).toHaveLength(2);

    advance(RETRY_SCHEDULE_MS[0] + 1000);
    const all = await arrived("/retried", 4);
    await waitFor("both delivered", async () => (await deliveries(hook.id)).every((d) => d.status === "delivered"));
    const byId = new Map<string, ReceivedRequest[]>();
    for (const r of all) byId.set(r.id, [...(byId.get(r.id) ?? []), r]);
    expect(byId.size).toBe(2);
    for (const [webhookId, tries] of byId) {
      expect(tries).toHaveLength(2);
      // The same id and body on every attempt: receivers de-duplicate on webhook-id.
      expect(tries[1].body).toBe(tries[0].body);
      expect(waiting.map((d) => d.id)).toContain(webhookId);
      for (const r of tries) {
        expect(verifySignature(hook.secret, r), "signature").toBe(true);
        expect(verifySignature("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", r)).toBe(false);
        expect(Math.abs(Number(r.timestamp) * 1000 - now())).toBeLessThan(RETRY_SCHEDULE_MS[0] + 60_000);
        expect(r.headers["content-type"]).toBe("application/json");
      }
      // A body altered on the way no longer verifies.
      expect(verifySignature(hook.secret, { ...tries[0], body: tries[0].body.replace("message", "massage") })).toBe(false);
    }
    const sent = all.find((r) => r.json.type === "message.sent") as ReceivedRequest;
    expect(sent.json.data).toMatchObject({ id, status: "sent", server: { name: "Peer" }, error: null });
    expect(sent.json.data.messageId).toMatch(/@example\.com$/);
    // Delivery facts, never the message's recipients or content.
    expect(sent.body).not.toContain("someone@example.com");
    expect(sent.body).not.toContain("Invoice");
    const log = (await deliveries(hook.id)).flatMap((d) => d.attemptLog.map((a) => a.httpStatus));
    expect(log.sort()).toEqual([200, 200, 500, 500]);
  });

  it("tells failed with the server's refusal, and held with why, for real messages", async () => {
    await register("/outcomes", ["failed", "held"]);
    const failedId = await send("nobody@example.com");
    const [failed] = await arrived("/outcomes", 1);
    expect(failed.json.type).toBe("message.failed");
    expect(failed.json.data).toMatchObject({ id: failedId, status: "failed", error: { code: "recipient_rejected" } });

    // A server with no host cannot send: its mail is held at accept.
    await t.mailroom.servers.create(
      { name: "Unfinished", driver: "smtp", fromAddress: "app@example.com", settings: {} },
      systemActor,
    );
    const heldId = await send("someone@example.com", "Unfinished");
    const [, held] = await arrived("/outcomes", 2);
    expect(held.json).toMatchObject({
      type: "message.held",
      data: { id: heldId, status: "held", error: { code: "server_not_ready" } },
    });
  });

  it("tells queued again when someone retries a failed message", async () => {
    const hook = await register("/retry", ["queued"]);
    receiver.answer = () => ({ status: 200 });
    const id = await send("nobody@example.com");
    await waitFor("the message failed", async () => (await t.mailroom.messages.getRow(id)).status === "failed");
    const before = at("/retry").length;
    const res = await t.request(app, { method: "POST", url: `/api/messages/${id}/retry` });
    expect(res.statusCode, res.body).toBe(200);
    const got = await arrived("/retry", before + 1);
    expect(got.filter((r) => r.json.data.id === id).map((r) => r.json.type)).toEqual(["message.queued", "message.queued"]);
    await waitFor("both delivered", async () => (await deliveries(hook.id)).filter((d) => d.status === "delivered").length === 2);
  });

  it("replays a delivered event from the API with the same webhook-id and body; a pending one answers 409", async () => {
    const hook = await register("/replay", ["sent"]);
    await send("someone@example.com");
    const [original] = await arrived("/replay", 1);
    const [delivered] = await waitFor("delivered", async () => {
      const items = await deliveries(hook.id);
      return items[0]?.status === "delivered" && items;
    });
    const res = await t.request(app, { method: "POST", url: `/api/webhook-deliveries/${delivered.id}/replay` });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ id: delivered.id, attempts: 0 });
    const [, again] = await arrived("/replay", 2);
    expect(again.id).toBe(original.id);
    expect(again.body).toBe(original.body);
    expect(verifySignature(hook.secret, again)).toBe(true);
    const [after] = await waitFor("delivered again", async () => {
      const items = await deliveries(hook.id);
      return items[0]?.status === "delivered" && items;
    });
    expect(after.attemptLog).toHaveLength(2);
    const audit = await t.request(t.admin, { method: "GET", url: "/api/audit?limit=100" });
    expect(audit.json().items.map((e: { action: string }) => e.action)).toContain("webhook.replay");

    // 503 with Retry-After: the next attempt waits as asked; a pending delivery is not replayed.
    const slow = await register("/busy", ["sent"]);
    receiver.answer = (r) => (r.path === "/busy" ? { status: 503, headers: { "retry-after": "120" } } : { status: 200 });
    await send("someone@example.com");
    await arrived("/busy", 1);
    const [pending] = await waitFor("pending after 503", async () => {
      const items = await deliveries(slow.id);
      return items[0]?.attemptLog.length === 1 && items[0].status === "pending" && items;
    });
    // From the attempt's own time: a loaded machine may take a while to show it.
    const triedAt = Date.parse(pending.attemptLog[0].at);
    expect(Date.parse(pending.nextAttemptAt as string)).toBeGreaterThanOrEqual(triedAt + 110_000);
    const refused = await t.request(app, { method: "POST", url: `/api/webhook-deliveries/${pending.id}/replay` });
    expect(refused.statusCode).toBe(409);
    expect(refused.json().code).toBe("webhook_delivery_pending");
    receiver.answer = () => ({ status: 200 });
  });

  it("gives up after the schedule (about 27 hours), and at once on 410 Gone", async () => {
    const down = await register("/down", ["sent"]);
    const gone = await register("/gone", ["sent"]);
    receiver.answer = (r) => (r.path === "/down" ? { status: 500 } : r.path === "/gone" ? { status: 410 } : { status: 200 });
    await send("someone@example.com");
    await arrived("/down", 1);
    await arrived("/gone", 1);
    await waitFor("410 failed at once", async () => (await deliveries(gone.id))[0]?.status === "failed");
    for (const [i, step] of RETRY_SCHEDULE_MS.entries()) {
      await waitFor(`attempt ${i + 1} recorded`, async () => (await deliveries(down.id))[0]?.attemptLog.length === i + 1);
      advance(step + 1000);
      await arrived("/down", i + 2);
    }
    const [last] = await waitFor("failed after the last step", async () => {
      const items = await deliveries(down.id);
      return items[0]?.status === "failed" && items;
    });
    expect(last.attempts).toBe(RETRY_SCHEDULE_MS.length + 1);
    expect(last.lastError).toContain("HTTP 500");
    // Nothing more, however far the clock moves; 410 was never retried.
    advance(48 * 3600_000);
    expect((await deliveries(down.id))[0].attemptLog).toHaveLength(RETRY_SCHEDULE_MS.length + 1);
    expect(at("/gone")).toHaveLength(1);
    receiver.answer = () => ({ status: 200 });
  });

  it("sends a signed test ping now and answers how it went, and stops telling a disabled webhook", async () => {
    const hook = await register("/ping", ["sent"]);
    const res = await t.request(app, { method: "POST", url: `/api/webhooks/${hook.id}/test` });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ type: "test", status: "delivered", attemptLog: [{ httpStatus: 200 }] });
    const [ping] = at("/ping");
    expect(ping.json.type).toBe("webhook.test");
    expect(verifySignature(hook.secret, ping)).toBe(true);

    const off = await t.request(app, { method: "PATCH", url: `/api/webhooks/${hook.id}`, payload: { enabled: false } });
    expect(off.json()).toMatchObject({ enabled: false });
    const id = await send("someone@example.com");
    await waitFor("sent", async () => (await t.mailroom.messages.getRow(id)).status === "sent");
    const rows = await t.mailroom.ctx.db
      .selectFrom("webhook_deliveries")
      .select("id")
      .where("webhook_id", "=", hook.id)
      .execute();
    expect(rows).toHaveLength(1); // the ping only
  });
});
