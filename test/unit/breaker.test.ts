/**
 * The circuit breaker's rules on a real database, with an injected clock: the threshold,
 * the probe schedule, one prober at a time, and what a pass or an edit does.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { bootstrap, createMailroom, type Mailroom } from "../../src/app.js";
import type { Principal } from "../../src/auth/permissions.js";
import { systemActor } from "../../src/core/audit.js";
import { Breakers, probeDelay } from "../../src/queue/breaker.js";
import { availableDialects, freshConfig } from "../helpers/databases.js";

const MINUTE = 60_000;
const schedule = [30_000, MINUTE, 2 * MINUTE, 5 * MINUTE, 10 * MINUTE, 15 * MINUTE];
const sender: Principal = {
  kind: "user",
  id: "breaker-test",
  label: "breaker test",
  email: null,
  superAdmin: true,
  permissions: new Set(),
  serverIds: null,
  userId: null,
};

describe.each(await availableDialects())("a server's circuit breaker on %s", (dialect) => {
  let mailroom: Mailroom;
  let drop: () => Promise<void>;
  let now = 1_000_000;
  const clock = () => now;
  let breakers: Breakers;
  let serverId: string;

  beforeAll(async () => {
    const fresh = await freshConfig(dialect);
    drop = fresh.drop;
    mailroom = createMailroom(fresh.config);
    await bootstrap(mailroom);
    breakers = new Breakers(
      mailroom.ctx,
      mailroom.servers,
      { threshold: 3, probeScheduleMs: schedule, probeLeaseMs: MINUTE },
      clock,
    );
  });
  afterAll(async () => {
    await mailroom.close();
    await drop();
  });
  beforeEach(async () => {
    const server = await mailroom.servers.create(
      {
        name: `Relay ${Math.random().toString(36).slice(2, 8)}`,
        driver: "smtp",
        fromAddress: "app@example.com",
        settings: { host: "127.0.0.1", port: 2525, security: "none" },
      },
      systemActor,
    );
    serverId = server.id;
  });

  const status = async () => (await mailroom.servers.get(serverId)).status;
  const queue = (n: number) =>
    mailroom.messages.enqueueBatch(
      Array.from({ length: n }, (_, i) => ({ server: serverId, to: `r${i}@example.com`, subject: `m${i}` })),
      sender,
    );
  const statuses = async (ids: string[]) => Promise.all(ids.map(async (id) => (await mailroom.messages.getRow(id)).status));

  it("opens only after three server problems in a row, and holds the server's queued mail", async () => {
    const queued = (await queue(3)).map((q) => q.id);
    expect(await breakers.recordServerProblem(serverId, "refused")).toBe(false);
    expect(await breakers.recordServerProblem(serverId, "refused")).toBe(false);
    // A success between them: the run starts again.
    await breakers.recordSuccess(serverId);
    expect(await breakers.recordServerProblem(serverId, "refused")).toBe(false);
    expect(await breakers.recordServerProblem(serverId, "refused")).toBe(false);
    expect(await status()).toBe("ready");
    expect(await breakers.recordServerProblem(serverId, "535 refused (smtp_auth_failed)")).toBe(true);
    expect(await status()).toBe("failing");
    expect(await statuses(queued)).toEqual(["held", "held", "held"]);
    // New mail to a failing server is held at once, not attempted.
    const [late] = await queue(1);
    expect(late.status).toBe("held");
    const view = await breakers.view(serverId);
    expect(view).toMatchObject({ state: "open", heldMessages: 4, failedProbes: 0 });
    expect(Date.parse(view.nextProbeAt as string)).toBe(now + 30_000);
  });

  it("probes on the schedule 30 s, 1, 2, 5, 10 min, then every 15 min, one process at a time", async () => {
    await breakers.open(serverId, "refused");
    const mine = async (owner: string) => (await breakers.claimDueProbes(owner, 10)).filter((c) => c.serverId === serverId);
    expect(await mine("a")).toEqual([]);
    const waits = [30_000, MINUTE, 2 * MINUTE, 5 * MINUTE, 10 * MINUTE, 15 * MINUTE, 15 * MINUTE];
    for (const wait of waits) {
      const from = now;
      // Not a millisecond early…
      now = from + wait - 1;
      expect(await mine("a")).toEqual([]);
      // …and due on time.
      now = from + wait;
      const claim = await mine("a");
      expect(claim).toHaveLength(1);
      // While "a" probes, "b" gets nothing.
      expect(await mine("b")).toEqual([]);
      await breakers.probeFailed(claim[0], "a", "connection_refused: still down");
    }
    expect(await breakers.view(serverId)).toMatchObject({
      state: "open",
      failedProbes: 7,
      lastProbeError: "connection_refused: still down",
    });
  });

  it("lets another process take over a probe whose lease ran out", async () => {
    await breakers.open(serverId, "refused");
    now += 30_000;
    const [first] = (await breakers.claimDueProbes("a", 10)).filter((c) => c.serverId === serverId);
    expect(first).toBeDefined();
    now += MINUTE - 1;
    expect((await breakers.claimDueProbes("b", 10)).some((c) => c.serverId === serverId)).toBe(false);
    now += 1;
    expect((await breakers.claimDueProbes("b", 10)).some((c) => c.serverId === serverId)).toBe(true);
    // "a" lost its lease: its late result changes nothing.
    await breakers.probeFailed(first, "a", "late");
    expect((await breakers.view(serverId)).failedProbes).toBe(0);
  });

  it("a passing probe closes it and releases the held mail with fresh attempts", async () => {
    const ids = (await queue(2)).map((q) => q.id);
    await mailroom.ctx.db.updateTable("messages").set({ attempts: 6 }).where("id", "in", ids).execute();
    await breakers.open(serverId, "refused");
    expect(await statuses(ids)).toEqual(["held", "held"]);
    now += 30_000;
    const [claim] = (await breakers.claimDueProbes("a", 10)).filter((c) => c.serverId === serverId);
    expect(await breakers.probePassed(claim, "a")).toBe(true);
    expect(await status()).toBe("ready");
    const rows = await Promise.all(ids.map((id) => mailroom.messages.getRow(id)));
    expect(rows.map((r) => [r.status, r.attempts])).toEqual([
      ["queued", 0],
      ["queued", 0],
    ]);
    expect(await breakers.view(serverId)).toMatchObject({ state: "closed", consecutiveFailures: 0, nextProbeAt: null });
  });

  it("an edit asks for a probe at once, and a probe of the settings it replaced proves nothing", async () => {
    await breakers.open(serverId, "535 refused");
    now += 30_000;
    const [claim] = (await breakers.claimDueProbes("a", 10)).filter((c) => c.serverId === serverId);
    // The admin fixes the password while the old settings are being probed.
    await mailroom.servers.setSetting(serverId, "password", "the new password", systemActor);
    expect(await status()).toBe("failing");
    expect(await breakers.probePassed(claim, "a")).toBe(false);
    expect(await status()).toBe("failing");
    // The probe of the new settings is due now, without waiting for the schedule.
    const [again] = (await breakers.claimDueProbes("a", 10)).filter((c) => c.serverId === serverId);
    expect(again).toBeDefined();
    expect(again.version).toBeGreaterThan(claim.version);
    await breakers.probeFailed(again, "a", "still refused");
    expect(Date.parse((await breakers.view(serverId)).nextProbeAt as string)).toBe(now + probeDelay(1, schedule));
  });
});
