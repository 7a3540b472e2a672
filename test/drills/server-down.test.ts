/**
 * Drills of a server that cannot be used, against Mailroom as a real process: a peer that is
 * down and comes back, and a wrong password that an admin fixes. The breaker must open
 * after a few server problems, hold the mail without attempting it, probe on its schedule,
 * and release every message (attempts fresh) once a probe passes, with no new traffic.
 */
import { afterEach, describe, expect, it } from "vitest";
import { systemActor } from "../../src/core/audit.js";
import { countDeliveries, type Drill, signIn, startDrill } from "../helpers/drill.js";
import { waitFor } from "../helpers/wait.js";
import { type ReceivedMessage, type SmtpPeer, startSmtpPeer } from "../peers/smtp-peer.js";

const env = {
  MAILROOM_POLL_MS: "50",
  MAILROOM_RETRY_SCHEDULE: "0.1,0.2",
  MAILROOM_BREAKER_THRESHOLD: "3",
};

describe("drill: a server that cannot be used", () => {
  let drill: Drill | undefined;
  const peers: SmtpPeer[] = [];
  afterEach(async () => {
    await drill?.close();
    for (const p of peers.splice(0)) await p.close();
  });

  async function serverState(drill: Drill, id: string) {
    const [server, delivery] = await Promise.all([drill.db.servers.get(id), drill.db.breakers.view(id)]);
    return { status: server.status, ...delivery };
  }

  it("a peer down, then up: every message goes out once, soon after it returns, with no new traffic", async () => {
    const COUNT = 200;
    // The peer's port, with nothing listening on it yet: the server is down.
    const first = await startSmtpPeer({ security: "none" });
    const port = first.port;
    await first.close();
    drill = await startDrill({ ...env, MAILROOM_PROBE_SCHEDULE: "0.2" });
    const server = await drill.db.servers.create(
      {
        name: "Relay",
        driver: "smtp",
        fromAddress: "app@example.com",
        settings: { host: "127.0.0.1", port, security: "none", timeoutSeconds: 5 },
      },
      systemActor,
    );
    const ids = await drill.queue(
      Array.from({ length: COUNT }, (_, i) => ({ server: server.id, to: `r${i}@example.com`, subject: `down ${i}` })),
    );
    await drill.spawn();

    const d = drill;
    await waitFor("the server to turn failing and its mail to be held", async () => {
      const state = await serverState(d, server.id);
      return state.status === "failing" && state.heldMessages === COUNT && (await d.statuses(ids)).held === COUNT;
    });
    // Probes fail while it is down: refused connections, never a message.
    await waitFor("two failed probes", async () => (await serverState(d, server.id)).failedProbes >= 2);
    const attemptsWhileDown = await d.db.ctx.db
      .selectFrom("message_attempts")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .where("message_id", "in", ids)
      .executeTakeFirstOrThrow();

    const peer = await startSmtpPeer({ security: "none", port });
    peers.push(peer);
    const upAt = Date.now();
    await waitFor("every message to be sent", async () => (await d.statuses(ids)).sent === COUNT, 60_000);
    const tookMs = Date.now() - upAt;

    const counts = await countDeliveries(d, ids, peer.received);
    console.log(
      `peer down then up: ${Number(attemptsWhileDown.n)} attempts while down, all ${COUNT} sent ${tookMs} ms after it returned; ` +
        `sent ${counts.sent}, arrived unique ${counts.arrivedUnique}, duplicates ${counts.duplicates}, lost ${counts.lost}`,
    );
    expect(counts).toEqual({ sent: COUNT, arrivedUnique: COUNT, duplicates: 0, lost: 0 });
    // The breaker opened after a few server problems, not after a try of every message.
    expect(Number(attemptsWhileDown.n)).toBeLessThan(20);
    // A probe every 0.2 s finds it back: the mail goes out within a bound, not at the next new message.
    expect(tookMs).toBeLessThan(20_000);
    expect((await serverState(d, server.id)).status).toBe("ready");
    // Released mail got fresh attempts: none is failed, none used more than the limit.
    const spent = await d.db.ctx.db.selectFrom("messages").select("attempts").where("id", "in", ids).execute();
    expect(Math.max(...spent.map((r) => r.attempts))).toBeLessThanOrEqual(1);
  }, 120_000);

  it("a wrong password, then fixed: after the breaker opens only probes log in; the fix releases the mail at once", async () => {
    const COUNT = 100;
    const peer = await startSmtpPeer({ security: "none", auth: { user: "app", password: "right-password" } });
    peers.push(peer);
    // Three quick probes, then a long wait: the release must come from the fix, not the schedule.
    drill = await startDrill({ ...env, MAILROOM_PROBE_SCHEDULE: "0.3,0.3,0.3,600" });
    const server = await drill.db.servers.create(
      {
        name: "Relay",
        driver: "smtp",
        fromAddress: "app@example.com",
        settings: { host: "127.0.0.1", port: peer.port, security: "none", username: "app", password: "wrong-password" },
      },
      systemActor,
    );
    const ids = await drill.queue(
      Array.from({ length: COUNT }, (_, i) => ({ server: server.id, to: `r${i}@example.com`, subject: `auth ${i}` })),
    );
    const mailroom = await drill.spawn();

    const d = drill;
    const failedLogins = () => peer.authAttempts.filter((a) => !a.ok).length;
    await waitFor("the server to turn failing with nothing left in flight", async () => {
      const state = await serverState(d, server.id);
      return state.status === "failing" && !(await d.statuses(ids)).sending;
    });
    // After three quick failed probes the next is 10 minutes away: the count stands still.
    await waitFor("three failed probes", async () => {
      const state = await serverState(d, server.id);
      return state.failedProbes === 3 && !state.probing;
    });
    const { n } = await d.db.ctx.db
      .selectFrom("message_attempts")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .where("message_id", "in", ids)
      .where("error_code", "=", "smtp_auth_failed")
      .executeTakeFirstOrThrow();
    const byMessages = Number(n);
    console.log(
      `wrong password: ${COUNT} messages queued, ${failedLogins()} failed logins at the peer: ${byMessages} by messages before the breaker opened, 3 by probes`,
    );
    // Before opening: what was in flight when it opened (at most twice the pool of 5),
    // and at most the threshold's worth of retries: a small number, not one per message.
    expect(byMessages).toBeGreaterThanOrEqual(3);
    expect(byMessages).toBeLessThanOrEqual(2 * 5 + 3);
    // After opening: one login per probe, none for the messages.
    expect(failedLogins()).toBe(byMessages + 3);
    expect((await d.statuses(ids)).held).toBe(COUNT);

    // The admin fixes the password through the API: a probe runs at once and passes.
    const headers = await signIn(mailroom.url);
    const fixedAt = Date.now();
    const res = await fetch(`${mailroom.url}/api/email-servers/${server.id}/settings/password`, {
      method: "PATCH",
      headers,
      body: JSON.stringify({ value: "right-password" }),
    });
    expect(res.status).toBe(200);
    await waitFor("every message to be sent", async () => (await d.statuses(ids)).sent === COUNT, 60_000);
    const tookMs = Date.now() - fixedAt;
    const counts = await countDeliveries(d, ids, peer.received as ReceivedMessage[]);
    console.log(
      `wrong password, then fixed: all sent ${tookMs} ms after the fix; sent ${counts.sent}, arrived unique ${counts.arrivedUnique}, duplicates ${counts.duplicates}, lost ${counts.lost}`,
    );
    expect(counts).toEqual({ sent: COUNT, arrivedUnique: COUNT, duplicates: 0, lost: 0 });
    // The next scheduled probe was 10 minutes away: only the edit's probe can explain this.
    expect(tookMs).toBeLessThan(30_000);
  }, 120_000);
});
