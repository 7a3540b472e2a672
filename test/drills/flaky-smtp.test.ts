import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { systemActor } from "../../src/core/audit.js";
import { retryDelay } from "../../src/queue/backoff.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { availableDialects } from "../helpers/databases.js";
import { waitFor } from "../helpers/wait.js";
import { type SmtpPeer, startSmtpPeer } from "../peers/smtp-peer.js";

const COUNT = 300;

describe.each(await availableDialects())("an SMTP peer that fails 20% and drops 5% (%s)", (dialect) => {
  let t: TestApp;
  let peer: SmtpPeer;
  beforeAll(async () => {
    peer = await startSmtpPeer({ security: "none", faults: { random: { tempFailRate: 0.2, dropRate: 0.05 } } });
    t = await startTestApp(dialect, {
      MAILROOM_POLL_MS: "20",
      MAILROOM_RETRY_SCHEDULE: "0.05,0.1,0.2",
      MAILROOM_MAX_ATTEMPTS: "12",
    });
    await t.mailroom.servers.create(
      {
        name: "Flaky",
        driver: "smtp",
        fromAddress: "app@example.com",
        isDefault: true,
        settings: { host: "127.0.0.1", port: peer.port, security: "none" },
      },
      systemActor,
    );
    t.mailroom.worker.start();
  });
  afterAll(async () => {
    await t.close();
    await peer.close();
  });

  it(`delivers all ${COUNT} messages, each once, retrying on the backoff schedule`, async () => {
    const sender = {
      kind: "user" as const,
      id: "drill",
      label: "drill",
      email: null,
      superAdmin: true,
      permissions: new Set<never>(),
      serverIds: null,
      userId: null,
    };
    const queued = await t.mailroom.messages.enqueueBatch(
      Array.from({ length: COUNT }, (_, i) => ({ to: `r${i}@example.com`, subject: `drill ${i}`, text: "x" })),
      sender,
    );
    await waitFor(
      "every message to be sent",
      async () => {
        const { n } = await t.mailroom.ctx.db
          .selectFrom("messages")
          .select((eb) => eb.fn.countAll<number>().as("n"))
          .where("status", "=", "sent")
          .executeTakeFirstOrThrow();
        return Number(n) === COUNT;
      },
      90_000,
    );
    const counts = new Map<string, number>();
    for (const m of peer.received) counts.set(m.messageId ?? "", (counts.get(m.messageId ?? "") ?? 0) + 1);
    const attempts = await t.mailroom.ctx.db.selectFrom("message_attempts").selectAll().orderBy("id").execute();
    const failures = attempts.filter((a) => a.outcome !== "sent");
    console.log(
      `flaky SMTP (${dialect}): ${COUNT} messages, ${attempts.length} attempts, ${failures.filter((a) => a.error_code === "temporary_failure").length} answered 451, ${failures.filter((a) => a.error_code !== "temporary_failure").length} dropped, ${[...counts.values()].filter((n) => n > 1).length} duplicated`,
    );
    expect(counts.size).toBe(COUNT);
    // The peer drops only mid-DATA, before it accepts: nothing may arrive twice.
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    expect(failures.length).toBeGreaterThan(0);
    expect(failures.every((a) => a.outcome === "transient")).toBe(true);

    // Each retry waited at least the schedule's step, less the 20% jitter.
    const byMessage = new Map<string, typeof attempts>();
    for (const a of attempts) byMessage.set(a.message_id, [...(byMessage.get(a.message_id) ?? []), a]);
    for (const list of byMessage.values()) {
      for (let i = 1; i < list.length; i++) {
        const waited = list[i].started_at - (list[i - 1].started_at + list[i - 1].duration_ms);
        expect(waited).toBeGreaterThanOrEqual(retryDelay(i, [50, 100, 200], undefined, () => 0) - 5);
      }
    }
    expect(queued).toHaveLength(COUNT);
  }, 120_000);
});
