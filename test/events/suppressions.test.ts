import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { systemActor } from "../../src/core/audit.js";
import { auditEntries, expectError } from "../api/fixtures.js";
import { availableDialects } from "../helpers/databases.js";
import { dialog, type IntakeHarness, plain, rfc822, startIntake } from "../intake/harness.js";
import { sendAndSettle, suppressionsOf } from "./support.js";

describe.each(await availableDialects())("the suppression list on %s", (dialect) => {
  let h: IntakeHarness;
  let billingId: string;
  let captureId: string;
  beforeAll(async () => {
    h = await startIntake(dialect, { MAILROOM_POLL_MS: "20" });
    captureId = (await h.t.mailroom.servers.getRow("Capture")).id;
    billingId = (
      await h.t.mailroom.servers.create({ name: "Billing", driver: "capture", fromAddress: "billing@example.com" }, systemActor)
    ).id;
  });
  afterAll(() => h.close());

  const t = () => h.t;
  const add = (payload: unknown, caller = t().admin) =>
    t().request(caller, { method: "POST", url: "/api/suppressions", payload: payload as object });
  const remove = (id: string, caller = t().admin) => t().request(caller, { method: "DELETE", url: `/api/suppressions/${id}` });
  const count = async () =>
    Number(
      (
        await t()
          .mailroom.ctx.db.selectFrom("suppressions")
          .select((eb) => eb.fn.countAll<number>().as("n"))
          .executeTakeFirstOrThrow()
      ).n,
    );
  const sendApi = (payload: Record<string, unknown>) =>
    t().request(t().admin, { method: "POST", url: "/api/messages", payload: { subject: "s", text: "t", ...payload } });

  it("adds, lists, searches and removes entries by hand, audited; a second entry for the same scope is refused", async () => {
    const created = await add({ address: "  Jane.Doe@Example.COM ", detail: "Asked us to stop" });
    expect(created.statusCode, created.body).toBe(201);
    const entry = created.json();
    expect(entry).toMatchObject({
      address: "jane.doe@example.com",
      server: null,
      reason: "manual",
      detail: "Asked us to stop",
      createdBy: "admin@example.com",
    });
    const forServer = await add({ address: "jane.doe@example.com", server: "Billing" });
    expect(forServer.statusCode, forServer.body).toBe(201);
    expect(forServer.json().server).toEqual({ id: billingId, name: "Billing" });

    const duplicate = expectError(await add({ address: "JANE.DOE@example.com" }), 409, "suppression_exists");
    expect(duplicate.details).toEqual({ id: entry.id });
    expectError(await add({ address: "jane.doe@example.com", server: billingId }), 409, "suppression_exists");

    expect((await suppressionsOf(t(), "&q=jane.doe")).map((s) => s.id).sort()).toEqual([entry.id, forServer.json().id].sort());
    expect(await suppressionsOf(t(), `&q=jane.doe&server=Billing`)).toHaveLength(1);
    expect(await suppressionsOf(t(), "&q=jane.doe&reason=hard_bounce")).toHaveLength(0);
    // The search takes % and _ literally.
    expect(await suppressionsOf(t(), "&q=jane_doe")).toHaveLength(0);
    expect(await suppressionsOf(t(), "&q=%25")).toHaveLength(0);

    expect((await remove(forServer.json().id)).statusCode).toBe(204);
    expectError(await remove(forServer.json().id), 404, "suppression_not_found");
    const actions = (await auditEntries(t())).filter((e) => e.action.startsWith("suppression.")).map((e) => e.action);
    expect(actions).toEqual(["suppression.remove", "suppression.add", "suppression.add"]);
    expect((await remove(entry.id)).statusCode).toBe(204);
  });

  it("refuses bad input with a code naming the field, and stores nothing", async () => {
    const before = await count();
    const auditBefore = (await auditEntries(t())).length;
    const cases: [unknown, number, string, string][] = [
      [{ address: "not an address" }, 400, "invalid_address", "address"],
      [{ address: "a@b" }, 400, "invalid_address", "address"],
      [{}, 400, "validation_failed", "address"],
      [{ address: 42 }, 400, "validation_failed", "address"],
      [{ address: "a@example.com", reason: "manual" }, 400, "unknown_field", "reason"],
      [{ address: "a@example.com\r\nBcc: x@example.com" }, 400, "control_characters", "address"],
      [{ address: "a@example.com", detail: "x".repeat(501) }, 400, "validation_failed", "detail"],
      [{ address: "a@example.com", server: "No such server" }, 404, "email_server_not_found", "No such server"],
      [{ address: `${"a".repeat(250)}@example.com` }, 400, "validation_failed", "address"],
    ];
    for (const [payload, status, code, named] of cases) {
      expect(expectError(await add(payload), status, code).message, JSON.stringify(payload)).toContain(named);
    }
    expectError(
      await t().request(t().admin, { method: "GET", url: "/api/suppressions?reason=bounced" }),
      400,
      "validation_failed",
    );
    expectError(await t().request(t().admin, { method: "GET", url: "/api/suppressions?limit=0" }), 400, "validation_failed");
    expect(await count()).toBe(before);
    expect((await auditEntries(t())).length).toBe(auditBefore);
  });

  it("needs messages.view to list and suppressions.update to change; a token limited to a server keeps to it", async () => {
    const viewer = await t().userWith(["messages.view"]);
    expect((await t().request(viewer, { method: "GET", url: "/api/suppressions" })).statusCode).toBe(200);
    const refused = expectError(await add({ address: "viewer@example.com" }, viewer), 403, "forbidden");
    expect(refused.message).toContain("suppressions.update");
    const global = (await add({ address: "global@example.com" })).json();
    expectError(await remove(global.id, viewer), 403, "forbidden");
    expectError(await t().request(null, { method: "GET", url: "/api/suppressions" }), 401, "unauthenticated");

    const editor = await t().userWith(["suppressions.update"]);
    const own = await add({ address: "editor@example.com", server: "Billing" }, editor);
    expect(own.statusCode, own.body).toBe(201);
    expect((await remove(own.json().id, editor)).statusCode).toBe(204);

    const { token } = await t().mailroom.tokens.create(
      { name: "billing-only", permissions: ["messages.view", "suppressions.update"], serverIds: [billingId] },
      systemActor,
      null,
    );
    const limited = { headers: { authorization: `Bearer ${token}` } };
    const captureEntry = (await add({ address: "capture-only@example.com", server: "Capture" })).json();
    const seen = (await t().request(limited, { method: "GET", url: "/api/suppressions?limit=500" }))
      .json()
      .items.map((s: { id: string }) => s.id);
    expect(seen).toContain(global.id);
    expect(seen).not.toContain(captureEntry.id);
    expectError(await add({ address: "x@example.com" }, limited), 403, "server_not_allowed");
    expectError(await add({ address: "x@example.com", server: "Capture" }, limited), 403, "server_not_allowed");
    expect((await add({ address: "x@example.com", server: "Billing" }, limited)).statusCode).toBe(201);
    // Not its to remove: another server's entry, or one for every server.
    expectError(await remove(captureEntry.id, limited), 404, "suppression_not_found");
    expectError(await remove(global.id, limited), 404, "suppression_not_found");
    await remove(global.id);
    await remove(captureEntry.id);
  });

  it("refuses a message to a suppressed address at accept time (to, cc, bcc; a batch whole), naming it; another server's entry does not", async () => {
    const entry = (await add({ address: "gone@example.com" })).json();
    const billingOnly = (await add({ address: "billing-gone@example.com", server: "Billing" })).json();
    const messagesBefore = await t().mailroom.ctx.db.selectFrom("messages").select("id").execute();
    for (const field of ["to", "cc", "bcc"]) {
      const res = await sendApi({
        to: "ok@example.com",
        [field]: field === "to" ? "Gone <GONE@example.com>" : ["gone@example.com"],
      });
      const error = expectError(res, 400, "recipient_suppressed");
      expect(error.message).toContain("gone@example.com");
      expect(error.message).toContain(`DELETE /api/suppressions/${entry.id}`);
      expect(error.details).toMatchObject({ field, address: "gone@example.com", suppressionId: entry.id, reason: "manual" });
    }
    const batch = await t().request(t().admin, {
      method: "POST",
      url: "/api/messages/batch",
      payload: {
        messages: [
          { to: "ok@example.com", subject: "a", text: "b" },
          { to: "gone@example.com", subject: "a", text: "b" },
        ],
      },
    });
    expect(expectError(batch, 400, "recipient_suppressed").details).toMatchObject({ field: "messages[1].to" });
    expect(await t().mailroom.ctx.db.selectFrom("messages").select("id").execute()).toHaveLength(messagesBefore.length);

    // An entry for Billing refuses Billing only.
    expectError(await sendApi({ server: "Billing", to: "billing-gone@example.com" }), 400, "recipient_suppressed");
    expect((await sendApi({ server: "Capture", to: "billing-gone@example.com" })).statusCode).toBe(202);

    // Removed: accepted again.
    await remove(entry.id);
    expect((await sendApi({ to: "gone@example.com" })).statusCode).toBe(202);
    await remove(billingOnly.id);
  });

  it("an idempotency key already used still answers its first message", async () => {
    const first = await sendApi({ to: "later-gone@example.com", idempotencyKey: "order-77" });
    expect(first.statusCode).toBe(202);
    const entry = (await add({ address: "later-gone@example.com" })).json();
    const again = await sendApi({ to: "later-gone@example.com", idempotencyKey: "order-77" });
    expect(again.statusCode, again.body).toBe(202);
    expect(again.json().id).toBe(first.json().id);
    expectError(await sendApi({ to: "later-gone@example.com", idempotencyKey: "order-78" }), 400, "recipient_suppressed");
    await remove(entry.id);
  });

  it("refuses it through SMTP submission with 550 5.7.1 naming the address, and stores nothing", async () => {
    const entry = (await add({ address: "smtp-gone@example.com" })).json();
    const token = await h.token("smtp-app");
    const before = (await t().mailroom.ctx.db.selectFrom("messages").select("id").execute()).length;
    const d = await dialog(h.port);
    await d.send("EHLO app.local");
    expect(await d.send(`AUTH PLAIN ${plain("app", token)}`)).toMatch(/^235/);
    await d.pipeline([
      "MAIL FROM:<noreply@mailroom.localhost>",
      "RCPT TO:<ok@example.com>",
      "RCPT TO:<Smtp-Gone@example.com>",
      "DATA",
    ]);
    const reply = await d.data(`${rfc822({ From: "noreply@mailroom.localhost", To: "ok@example.com", Subject: "Hi" })}.\r\n`);
    expect(reply).toMatch(/^550 5\.7\.1 smtp-gone@example\.com is on the suppression list for every server/);
    expect(reply).toContain(entry.id);
    d.close();
    expect((await t().mailroom.ctx.db.selectFrom("messages").select("id").execute()).length).toBe(before);
    await remove(entry.id);
  });

  it("hard bounces suppress for every server by default, for the reporting server once the admin chooses so (audited)", async () => {
    const settings = () => t().request(t().admin, { method: "GET", url: "/api/settings/suppressions" });
    expect((await settings()).json()).toMatchObject({ scope: "everywhere", updatedAt: null });
    // A Postmark source on the Capture server: a source is the server's, whatever sends its mail.
    const setup = await t().request(t().admin, {
      method: "PUT",
      url: `/api/email-servers/${captureId}/event-sources/postmark`,
      payload: {},
    });
    const { username, password } = setup.json().credentials;
    const bounceFor = async (to: string) => {
      const message = await sendAndSettle(t(), t().admin, "Capture", to);
      const res = await t().request(null, {
        method: "POST",
        url: `/api/provider-events/${captureId}/postmark`,
        headers: { authorization: `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}` },
        payload: {
          RecordType: "Bounce",
          ID: Date.now(),
          Type: "HardBounce",
          MessageID: message.provider_message_id,
          Email: to,
          BouncedAt: new Date().toISOString(),
        },
      });
      expect(res.json()).toMatchObject({ accepted: 1 });
    };
    t().mailroom.worker.start();
    try {
      await bounceFor("everywhere@example.com");
      expect(await suppressionsOf(t(), "&q=everywhere@")).toEqual([
        expect.objectContaining({ server: null, reason: "hard_bounce" }),
      ]);
      expectError(await sendApi({ server: "Billing", to: "everywhere@example.com" }), 400, "recipient_suppressed");

      const viewer = await t().userWith(["messages.view"]);
      expectError(
        await t().request(viewer, { method: "PUT", url: "/api/settings/suppressions", payload: { scope: "server" } }),
        403,
        "forbidden",
      );
      expectError(
        await t().request(t().admin, { method: "PUT", url: "/api/settings/suppressions", payload: { scope: "galaxy" } }),
        400,
        "validation_failed",
      );
      const changed = await t().request(t().admin, {
        method: "PUT",
        url: "/api/settings/suppressions",
        payload: { scope: "server" },
      });
      expect(changed.json()).toMatchObject({ scope: "server", updatedBy: "admin@example.com" });
      expect((await auditEntries(t(), "&action=settings.suppressions.update"))[0]).toMatchObject({
        before: { scope: "everywhere" },
        after: { scope: "server" },
      });

      await bounceFor("here-only@example.com");
      expect(await suppressionsOf(t(), "&q=here-only@")).toEqual([
        expect.objectContaining({ server: expect.objectContaining({ id: captureId }) }),
      ]);
      expectError(await sendApi({ server: "Capture", to: "here-only@example.com" }), 400, "recipient_suppressed");
      expect((await sendApi({ server: "Billing", to: "here-only@example.com" })).statusCode).toBe(202);
    } finally {
      await t().mailroom.worker.stop();
    }
  });
});
