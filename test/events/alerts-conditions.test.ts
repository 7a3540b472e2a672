/**
 * The conditions alerts watch, with the clock moved instead of waiting: grants that will end
 * (Microsoft's 90 idle days, Google's 7 days in "Testing", a client secret's end date), held
 * mail, the queue's age and the failure rate; each announced once when it starts and once
 * when it ends.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { systemActor } from "../../src/core/audit.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { availableDialects } from "../helpers/databases.js";
import { type Receiver, startReceiver } from "./alert-receiver.js";

const DAY = 24 * 3600_000;
const HOUR = 3600_000;
const MINUTE = 60_000;
const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);

describe.each(await availableDialects())("alert conditions on %s", (dialect) => {
  let t: TestApp;
  let receiver: Receiver;
  let ahead = 0;
  const clock = () => Date.now() + ahead;

  beforeAll(async () => {
    receiver = await startReceiver();
    t = await startTestApp(dialect, { MAILROOM_ALLOWED_ENDPOINTS: receiver.origin }, { clock });
    const res = await t.request(t.admin, {
      method: "POST",
      url: "/api/alerts/channels",
      payload: { name: "Ops", type: "webhook", url: receiver.url() },
    });
    expect(res.statusCode, res.body).toBe(201);
  });
  afterAll(async () => {
    await t?.close();
    await receiver?.close();
  });

  /** The alerts received about a kind (and a subject), as "opened" / "resolved". */
  const about = (kind: string, subject?: string) =>
    receiver.received
      .map((r) => r.json as { type: string; data: { kind: string; title: string; subject: { id: string } | null } })
      .filter((j) => j.data.kind === kind && (subject === undefined || j.data.subject?.id === subject));
  const events = (kind: string, subject?: string) => about(kind, subject).map((j) => j.type.replace("alert.", ""));
  const tickAt = async (offset: number) => {
    ahead = offset;
    await t.mailroom.alerts.tick();
  };

  /** An authorized OAuth server: its grant recorded at `at`, its refresh token last used at `refreshedAt`. */
  async function authorized(driver: string, settings: Record<string, unknown>, at: number, provider: string) {
    const server = await t.mailroom.servers.create(
      { name: `${driver} ${Math.random().toString(36).slice(2, 6)}`, driver, fromAddress: "me@example.com", settings },
      systemActor,
    );
    await t.mailroom.ctx.db.transaction().execute(async (trx) => {
      await t.mailroom.servers.recordGrant(trx, server.id, {
        account: "me@example.com",
        scopes: "mail",
        authorizedAt: at,
        expiresAt: null,
      });
      await trx
        .insertInto("oauth_tokens")
        .values({
          server_id: server.id,
          provider,
          account: "me@example.com",
          scopes: "mail",
          refresh_token: t.mailroom.ctx.secrets.encrypt("refresh"),
          access_token: null,
          access_expires_at: null,
          access_obtained_at: null,
          grant_expires_at: null,
          generation: 0,
          lease_owner: null,
          lease_until: null,
          refreshed_at: at,
          refresh_error_code: null,
          refresh_error: null,
          refresh_error_at: null,
          created_at: at,
          updated_at: at,
        })
        .execute();
    });
    expect((await t.mailroom.servers.get(server.id)).status).toBe("ready");
    return server;
  }

  it("Microsoft: warns 14 days before a refresh token unused for 90 days ends; a refresh ends the incident", async () => {
    const start = ahead;
    const server = await authorized(
      "microsoft365",
      { clientId: "c", clientSecret: "s", tenant: "contoso.com" },
      clock(),
      "microsoft",
    );
    await tickAt(start + 75 * DAY);
    expect(events("grant_expiring", server.id)).toEqual([]);
    await tickAt(start + 76 * DAY + HOUR);
    await t.mailroom.alerts.tick();
    expect(events("grant_expiring", server.id)).toEqual(["opened"]);
    expect(about("grant_expiring", server.id)[0].data.title).toMatch(
      /^The authorization of '.+' ends in 14 days \(\d{4}-\d{2}-\d{2}\)$/,
    );
    // The daily OAuth check (or a send) refreshes the token: the window starts again.
    await t.mailroom.ctx.db
      .updateTable("oauth_tokens")
      .set({ refreshed_at: clock() })
      .where("server_id", "=", server.id)
      .execute();
    await t.mailroom.alerts.tick();
    await t.mailroom.alerts.tick();
    expect(events("grant_expiring", server.id)).toEqual(["opened", "resolved"]);
    await t.mailroom.servers.remove(server.id, systemActor);
  });

  it('Google: an app in "Testing" is warned 2 days before its 7 days end; a new authorization ends it', async () => {
    const start = ahead;
    const at = clock();
    const testing = await authorized("gmail", { clientId: "c", clientSecret: "s", publishingStatus: "testing" }, at, "google");
    const production = await authorized("gmail", { clientId: "c", clientSecret: "s" }, at, "google");
    await tickAt(start + 4 * DAY);
    expect(events("grant_expiring", testing.id)).toEqual([]);
    await tickAt(start + 5 * DAY + HOUR);
    expect(events("grant_expiring", testing.id)).toEqual(["opened"]);
    expect(about("grant_expiring", testing.id)[0].data.title).toContain(`ends in 2 days (${day(at + 7 * DAY)})`);
    await tickAt(start + 6 * DAY + 23 * HOUR);
    // Once per incident: the days counting down send nothing more; an app in production, nothing at all.
    expect(events("grant_expiring", testing.id)).toEqual(["opened"]);
    expect(events("grant_expiring", production.id)).toEqual([]);
    await t.mailroom.ctx.db.transaction().execute((trx) =>
      t.mailroom.servers.recordGrant(trx, testing.id, {
        account: "me@example.com",
        scopes: "mail",
        authorizedAt: clock(),
        expiresAt: null,
      }),
    );
    await t.mailroom.alerts.tick();
    expect(events("grant_expiring", testing.id)).toEqual(["opened", "resolved"]);
    for (const s of [testing, production]) await t.mailroom.servers.remove(s.id, systemActor);
  });

  it("a client secret's end date: a warning 30 days before, another 7 days before; a new date ends both", async () => {
    const start = ahead;
    const ends = day(clock() + 40 * DAY);
    const create = await t.request(t.admin, {
      method: "POST",
      url: "/api/email-servers",
      payload: {
        name: "Graph",
        driver: "microsoft-graph",
        fromAddress: "me@example.com",
        settings: { tenant: "contoso.com", clientId: "c", clientSecret: "s", credentialExpiresOn: ends },
      },
    });
    expect(create.statusCode, create.body).toBe(201);
    const id = create.json().id;
    const bad = await t.request(t.admin, {
      method: "PATCH",
      url: `/api/email-servers/${id}/settings/credentialExpiresOn`,
      payload: { value: "2027-02-30" },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().message).toContain("YYYY-MM-DD");
    await tickAt(start + 5 * DAY);
    expect(events("client_secret_expiring", id)).toEqual([]);
    await tickAt(start + 11 * DAY);
    expect(events("client_secret_expiring", id)).toEqual(["opened"]);
    await tickAt(start + 20 * DAY);
    expect(events("client_secret_expiring", id)).toEqual(["opened"]);
    await tickAt(start + 34 * DAY);
    expect(events("client_secret_expiring", id)).toEqual(["opened", "opened"]);
    expect(about("client_secret_expiring", id)[1].data.title).toMatch(/ends in \d days/);
    const renewed = await t.request(t.admin, {
      method: "PATCH",
      url: `/api/email-servers/${id}/settings/credentialExpiresOn`,
      payload: { value: day(clock() + 700 * DAY) },
    });
    expect(renewed.statusCode, renewed.body).toBe(200);
    await t.mailroom.alerts.tick();
    expect(events("client_secret_expiring", id)).toEqual(["opened", "opened", "resolved", "resolved"]);
    await t.mailroom.servers.remove(id, systemActor);
  });

  async function setThresholds(changes: Record<string, unknown>) {
    const current = (await t.request(t.admin, { method: "GET", url: "/api/settings/alerts" })).json().thresholds;
    const res = await t.request(t.admin, { method: "PUT", url: "/api/settings/alerts", payload: { ...current, ...changes } });
    expect(res.statusCode, res.body).toBe(200);
  }

  async function queue(server: string, n: number): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const res = await t.request(t.admin, {
        method: "POST",
        url: "/api/messages",
        payload: { server, to: `r${i}@example.com`, subject: "s" },
      });
      expect(res.statusCode, res.body).toBe(202);
      ids.push(res.json().id);
    }
    return ids;
  }
  const removeMessages = (ids: string[]) => t.mailroom.ctx.db.deleteFrom("messages").where("id", "in", ids).execute();

  it("held mail above the threshold: once, kept open a little below it, ended under 80% of it", async () => {
    await setThresholds({ heldMessages: 5 });
    // An OAuth server nobody has authorized holds what is sent to it.
    const waiting = await t.mailroom.servers.create(
      { name: "Unauthorized", driver: "gmail", fromAddress: "me@example.com", settings: { clientId: "c", clientSecret: "s" } },
      systemActor,
    );
    const ids = await queue(waiting.id, 4);
    await t.mailroom.alerts.tick();
    expect(events("held_messages")).toEqual([]);
    ids.push(...(await queue(waiting.id, 1)));
    await t.mailroom.alerts.tick();
    await t.mailroom.alerts.tick();
    expect(events("held_messages")).toEqual(["opened"]);
    expect(about("held_messages")[0].data.title).toBe("5 messages are held");
    await removeMessages(ids.slice(0, 1));
    await t.mailroom.alerts.tick();
    expect(events("held_messages")).toEqual(["opened"]);
    await removeMessages(ids.slice(1, 2));
    await t.mailroom.alerts.tick();
    expect(events("held_messages")).toEqual(["opened", "resolved"]);
    await removeMessages(ids);
    await t.mailroom.servers.remove(waiting.id, systemActor);
  });

  it("the oldest queued message waiting longer than the threshold; it ends when the queue moves", async () => {
    await setThresholds({ queueAgeMinutes: 10 });
    // No worker runs: the message stays queued.
    const ids = await queue("Capture", 1);
    const start = ahead;
    await tickAt(start + 9 * MINUTE);
    expect(events("queue_age")).toEqual([]);
    await tickAt(start + 11 * MINUTE);
    expect(events("queue_age")).toEqual(["opened"]);
    expect(about("queue_age")[0].data.title).toBe("The oldest queued message has waited 11 minutes");
    await t.mailroom.ctx.db.updateTable("messages").set({ status: "sent", sent_at: clock() }).where("id", "in", ids).execute();
    await t.mailroom.alerts.tick();
    expect(events("queue_age")).toEqual(["opened", "resolved"]);
    await removeMessages(ids);
  });

  it("the failure rate over the window; too few messages say nothing; it ends when the window moves on", async () => {
    await setThresholds({ failureRatePercent: 50, failureRateMinMessages: 4, failureRateWindowMinutes: 60 });
    const ids = await queue("Capture", 4);
    const finish = (list: string[], status: "sent" | "failed") =>
      t.mailroom.ctx.db
        .updateTable("messages")
        .set(status === "sent" ? { status, sent_at: clock(), updated_at: clock() } : { status, updated_at: clock() })
        .where("id", "in", list)
        .execute();
    await finish(ids.slice(0, 3), "failed");
    await t.mailroom.alerts.tick();
    // 3 of 3 failed, but fewer than 4 finished: no rate yet.
    expect(events("failure_rate")).toEqual([]);
    await finish(ids.slice(3), "sent");
    await t.mailroom.alerts.tick();
    expect(events("failure_rate")).toEqual(["opened"]);
    expect(about("failure_rate")[0].data.title).toBe("75% of messages failed in the last 60 minutes");
    await tickAt(ahead + 61 * MINUTE);
    expect(events("failure_rate")).toEqual(["opened", "resolved"]);
    await removeMessages(ids);
  });

  it("the history lists every incident with its notifications, open ones first asked for", async () => {
    const all = (await t.request(t.admin, { method: "GET", url: "/api/alerts/incidents?limit=100" })).json();
    const kinds = all.items.map((i: { kind: string }) => i.kind);
    for (const kind of ["grant_expiring", "client_secret_expiring", "held_messages", "queue_age", "failure_rate"]) {
      expect(kinds).toContain(kind);
    }
    expect(
      all.items.every((i: { notifications: { status: string }[] }) => i.notifications.every((n) => n.status === "delivered")),
    ).toBe(true);
    const open = (await t.request(t.admin, { method: "GET", url: "/api/alerts/incidents?open=true" })).json();
    expect(open.items.every((i: { open: boolean }) => i.open)).toBe(true);
  });
});
