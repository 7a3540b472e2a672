/**
 * createMailroom's clock reaches every time decision of delivery: a message the daily limit
 * put back for tomorrow goes out once the clock says it is tomorrow, not a real day later.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { systemActor } from "../../src/core/audit.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { waitFor } from "../helpers/wait.js";
import { type SmtpPeer, startSmtpPeer } from "../peers/smtp-peer.js";

const DAY_MS = 24 * 3600_000;

describe("an injected clock", () => {
  let t: TestApp;
  let peer: SmtpPeer;
  /** How far the app's clock is ahead of real time: the test moves it. */
  let ahead = 0;

  beforeAll(async () => {
    peer = await startSmtpPeer({ security: "none" });
    t = await startTestApp("sqlite", { MAILROOM_POLL_MS: "20" }, { clock: () => Date.now() + ahead });
    await t.mailroom.servers.create(
      {
        name: "Daily",
        driver: "smtp",
        fromAddress: "app@example.com",
        isDefault: true,
        settings: { host: "127.0.0.1", port: peer.port, security: "none", messagesPerDay: 1 },
      },
      systemActor,
    );
    t.mailroom.worker.start();
  });
  afterAll(async () => {
    await t?.close();
    await peer?.close();
  });

  it("sends the message held back by the daily limit once the clock has moved a day", async () => {
    const ids: string[] = [];
    for (const to of ["first@example.com", "second@example.com"]) {
      const res = await t.request(t.admin, { method: "POST", url: "/api/messages", payload: { to, subject: to } });
      expect(res.statusCode, res.body).toBe(202);
      ids.push(res.json().id);
    }
    const rows = () => Promise.all(ids.map((id) => t.mailroom.messages.getRow(id)));
    const waiting = await waitFor("one sent, one put back for tomorrow", async () => {
      const [a, b] = await rows();
      const w = [a, b].find((r) => r.status === "queued" && r.next_attempt_at > Date.now() + ahead + DAY_MS / 2);
      return [a, b].some((r) => r.status === "sent") && w;
    });
    expect(peer.received).toHaveLength(1);

    ahead = waiting.next_attempt_at - Date.now() + 60_000;
    t.mailroom.worker.wake();
    await waitFor("the second message, a day later by the clock", async () => (await rows()).every((r) => r.status === "sent"));
    expect(peer.received.map((m) => m.subject).sort()).toEqual(["first@example.com", "second@example.com"]);
    const sentAt = (await rows()).map((r) => Number(r.sent_at));
    expect(Math.abs(sentAt[1] - sentAt[0])).toBeGreaterThanOrEqual(DAY_MS - 60_000);
  });
});
