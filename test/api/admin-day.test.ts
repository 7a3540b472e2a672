/**
 * What the admin UI's day needs from the API (issue 12): the public facts for examples, the
 * redirect URI before a save, a server test's email in the delivery log, delivery-log search,
 * retries that keep count and are audited, Capture as a dev inbox (search, delete, downloads
 * that cannot run script on Mailroom's origin, decoded headers, release through a real
 * server), and an audit log that names things and filters by action, actor and time.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { systemActor } from "../../src/core/audit.js";
import { type Caller, startTestApp, type TestApp } from "../helpers/app.js";
import { availableDialects } from "../helpers/databases.js";
import { waitFor } from "../helpers/wait.js";
import { type SmtpPeer, startSmtpPeer } from "../peers/smtp-peer.js";
import { createServer, expectError, serverBody } from "./fixtures.js";

interface Message {
  id: string;
  status: string;
  subject: string;
  attemptCount: number;
  maxAttempts: number;
  providerMessageId: string | null;
  test: boolean;
  attempts: { outcome: string; errorCode: string | null }[];
}

describe.each(await availableDialects())("the admin's day on %s", (dialect) => {
  let t: TestApp;
  let smtp: SmtpPeer;
  let app: Caller;
  let captureId: string;
  let relayId: string;

  beforeAll(async () => {
    smtp = await startSmtpPeer({ security: "none" });
    t = await startTestApp(dialect, { MAILROOM_POLL_MS: "50", MAILROOM_PUBLIC_URL: "http://mail.example.test:8025" });
    const { token } = await t.mailroom.tokens.create(
      { name: "app", permissions: ["messages.send", "messages.view"] },
      systemActor,
      null,
    );
    app = { headers: { authorization: `Bearer ${token}` } };
    captureId = (await t.mailroom.servers.getRow("Capture")).id;
    relayId = (
      await createServer(
        t,
        serverBody("smtp", "Relay", {
          fromAddress: "relay@example.com",
          settings: { host: "127.0.0.1", port: smtp.port, security: "none" },
        }),
      )
    ).id;
    t.mailroom.worker.start();
  });
  afterAll(async () => {
    await t?.close();
    await smtp?.close();
  });

  const get = (url: string, caller: Caller = t.admin) => t.request(caller, { method: "GET", url });
  const message = async (id: string) => (await get(`/api/messages/${id}`)).json() as Message;
  const settled = (id: string) =>
    waitFor(`message ${id} to settle`, async () => {
      const m = await message(id);
      return m.status === "sent" || m.status === "failed" ? m : null;
    });
  const send = async (body: object) => {
    const res = await t.request(app, { method: "POST", url: "/api/messages", payload: body });
    expect(res.statusCode, res.body).toBe(202);
    return res.json().id as string;
  };

  it("GET /api/info gives the public URL and the API docs for examples; SMTP submission is null while off", async () => {
    const res = await get("/api/info", await t.userWith([]));
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      publicUrl: "http://mail.example.test:8025",
      apiDocsUrl: "http://mail.example.test:8025/api/docs",
      smtp: null,
    });
  });

  it("GET /api/drivers gives each OAuth driver's redirect URI before any server is saved", async () => {
    const drivers = (await get("/api/drivers")).json().items as { id: string; derived: Record<string, string> }[];
    expect(drivers.find((d) => d.id === "gmail")?.derived).toEqual({
      redirectUri: "http://mail.example.test:8025/oauth/google/callback",
    });
    expect(drivers.find((d) => d.id === "microsoft365")?.derived.redirectUri).toBe(
      "http://mail.example.test:8025/oauth/microsoft/callback",
    );
    expect(drivers.find((d) => d.id === "smtp")?.derived).toEqual({});
  });

  it("an incomplete server names what is missing by the labels the form shows", async () => {
    const res = await t.request(t.admin, {
      method: "POST",
      url: "/api/email-servers",
      payload: { name: "Half Gmail", driver: "gmail", fromAddress: "a@example.com", settings: {} },
    });
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json().statusDetail).toBe("Missing: Client ID, Client secret.");
  });

  it("a test email is in the delivery log, marked as a test, with the captured message's id; it is never retried", async () => {
    const res = await t.request(t.admin, {
      method: "POST",
      url: `/api/email-servers/${captureId}/test`,
      payload: { mode: "send", to: "tester@example.com" },
    });
    expect(res.statusCode, res.body).toBe(200);
    const report = res.json();
    expect(report.ok).toBe(true);
    expect(report.logId).toBeTruthy();
    const logged = await message(report.logId);
    expect(logged).toMatchObject({ status: "sent", test: true, attemptCount: 1, maxAttempts: 1 });
    expect(logged.subject).toBe('Mailroom test message from "Capture"');
    expect(logged.attempts).toEqual([expect.objectContaining({ outcome: "sent" })]);
    // "Open it": the captured message the test made.
    expect(report.providerMessageId).toBe(logged.providerMessageId);
    const captured = await get(`/api/capture/${captureId}/messages/${report.providerMessageId}`);
    expect(captured.json().parsed.to).toEqual([{ address: "tester@example.com" }]);
    // Marked in the list too; a message an application sent is not.
    const list = (await get("/api/messages?q=tester%40example.com")).json();
    expect(list.items.map((m: Message) => [m.id, m.test])).toEqual([[report.logId, true]]);
    const other = await send({ server: "Capture", to: "tester2@example.com", subject: "not a test", text: "x" });
    expect((await message(other)).test).toBe(false);
    expectError(
      await t.request(t.admin, { method: "POST", url: `/api/messages/${report.logId}/retry` }),
      409,
      "message_not_retryable",
    );
  });

  it("a failed test email is logged failed with its attempt, and the queue leaves it alone", async () => {
    // The check passes (it stops before DATA); the message itself is refused at the end of DATA.
    smtp.setFaults({ failMessages: { times: 1, code: 554, message: "5.7.1 test refused" } });
    try {
      const res = await t.request(t.admin, {
        method: "POST",
        url: `/api/email-servers/${relayId}/test`,
        payload: { mode: "send", to: "tester@example.com" },
      });
      const report = res.json();
      expect(report.ok).toBe(false);
      expect(report.steps.at(-1)).toMatchObject({ step: "send", ok: false });
      const logged = await message(report.logId);
      expect(logged).toMatchObject({ status: "failed", test: true, attemptCount: 1, maxAttempts: 1 });
      expect(logged.attempts).toEqual([expect.objectContaining({ errorCode: report.error.code })]);
      // The worker polls every 50 ms: a real message queued after it is sent, the test one stays as it was.
      await settled(await send({ server: "Capture", to: "after@example.com", subject: "after", text: "x" }));
      expect(await message(report.logId)).toMatchObject({ status: "failed", attemptCount: 1 });
    } finally {
      smtp.setFaults({});
    }
  });

  it("searches the delivery log by subject and by recipient, with % and _ taken literally", async () => {
    const ids = [
      await send({ server: "Capture", to: "ann@example.com", subject: "Invoice 100% paid", text: "x" }),
      await send({ server: "Capture", to: "bob_smith@example.com", subject: "Welcome Bob", text: "x" }),
      await send({ server: "Capture", to: "carol@example.com", subject: "Your INVOICE is ready", text: "x" }),
    ];
    const found = async (q: string) =>
      ((await get(`/api/messages?q=${encodeURIComponent(q)}&limit=500`)).json().items as Message[])
        .map((m) => m.id)
        .filter((id) => ids.includes(id))
        .sort();
    expect(await found("invoice")).toEqual([ids[0], ids[2]].sort());
    expect(await found("BOB_SMITH@")).toEqual([ids[1]]);
    expect(await found("100%")).toEqual([ids[0]]);
    // A LIKE wildcard typed by the user matches itself only.
    expect(await found("%")).toEqual([ids[0]]);
    expect(await found("b_b")).toEqual([]);
    expect(await found("nothing like this")).toEqual([]);
  });

  it("a retry keeps the attempts made (2 of 6), and the audit log records it by message", async () => {
    smtp.setFaults({ rejectRecipients: ["nobody@example.com"] });
    const id = await send({ server: "Relay", to: "nobody@example.com", subject: "Report for nobody", text: "x" });
    const failed = await settled(id);
    expect(failed).toMatchObject({ status: "failed", attemptCount: 1, maxAttempts: 6 });
    smtp.setFaults({});
    const retried = await t.request(t.admin, { method: "POST", url: `/api/messages/${id}/retry` });
    expect(retried.statusCode, retried.body).toBe(200);
    expect(retried.json()).toMatchObject({ status: "queued", attemptCount: 1 });
    const sent = await settled(id);
    expect(sent).toMatchObject({ status: "sent", attemptCount: 2, maxAttempts: 6 });
    expect(sent.attempts.map((a) => a.outcome)).toEqual(["recipient", "sent"]);

    const audit = (await get(`/api/audit?action=message.retry&targetId=${id}`)).json();
    expect(audit.total).toBe(1);
    expect(audit.items[0]).toMatchObject({
      action: "message.retry",
      actor: { type: "user", label: "admin@example.com" },
      target: { type: "message", id, label: "Report for nobody" },
      before: { status: "failed", attempts: 1 },
      after: { status: "queued", attempts: 1 },
    });
  });

  it("the audit log names its servers and users, and filters by actor and time", async () => {
    const editor = await t.userWith(["email-servers.update", "email-servers.view"], `editor-${dialect}@example.com`);
    const created = await createServer(t, serverBody("smtp", "Named in the audit"), editor);
    await t.request(t.admin, { method: "DELETE", url: `/api/email-servers/${created.id}` });

    const filters = (await get("/api/audit/filters")).json();
    expect(filters.actions).toEqual(expect.arrayContaining(["email_server.create", "email_server.delete", "message.retry"]));
    const editorActor = filters.actors.find((a: { label: string }) => a.label === `editor-${dialect}@example.com`);
    expect(editorActor).toMatchObject({ type: "user" });

    const byEditor = (await get(`/api/audit?actorId=${editorActor.id}`)).json();
    expect(byEditor.items.map((e: { action: string }) => e.action)).toEqual(["email_server.create"]);
    // A deleted server is still named: by the name the entry recorded.
    expect(byEditor.items[0].target).toMatchObject({ type: "email_server", id: created.id, label: "Named in the audit" });

    const users = (await get("/api/audit?action=user.create&limit=500")).json();
    const entry = users.items.find((e: { after: { email?: string } }) => e.after?.email === `editor-${dialect}@example.com`);
    expect(entry.target.label).toBe(`editor-${dialect}@example.com`);

    const future = new Date(Date.now() + 60_000).toISOString();
    expect((await get(`/api/audit?since=${encodeURIComponent(future)}`)).json().total).toBe(0);
    expect((await get(`/api/audit?until=${encodeURIComponent(future)}`)).json().total).toBeGreaterThan(3);
    expectError(await get("/api/audit?since=yesterday"), 400, "validation_failed");
  });

  describe("Capture as a dev inbox", () => {
    const SCRIPT_HTML = '<html><body><script>fetch("/api/tokens",{method:"POST"})</script>owned</body></html>';
    let captured: string;

    beforeAll(async () => {
      const id = await send({
        server: "Capture",
        to: "Zoë <zoe@example.com>",
        cc: "cc@example.com",
        subject: "Grüße aus Köln",
        text: "Hallo",
        html: '<p>Hallo <img src="https://tracker.example/pixel.gif"></p>',
        attachments: [
          { filename: "evil.html", contentType: "text/html", content: Buffer.from(SCRIPT_HTML).toString("base64") },
          { filename: "notes.txt", contentType: "text/plain", content: Buffer.from("notes").toString("base64") },
        ],
      });
      captured = (await settled(id)).providerMessageId as string;
      await send({ server: "Capture", to: "dave@example.com", subject: "Password reset", text: "x" });
      await waitFor("two captured", async () => (await get(`/api/capture/${captureId}/messages?q=reset`)).json().total === 1);
    });

    it("searches by subject, from and to", async () => {
      const search = async (q: string) =>
        ((await get(`/api/capture/${captureId}/messages?q=${encodeURIComponent(q)}`)).json().items as { subject: string }[]).map(
          (m) => m.subject,
        );
      expect(await search("köln")).toEqual(["Grüße aus Köln"]);
      expect(await search("zoe@example")).toEqual(["Grüße aus Köln"]);
      expect(await search("Zoë grüße")).toEqual(["Grüße aus Köln"]);
      expect(await search("dave reset")).toEqual(["Password reset"]);
      expect(await search("nobody-at-all")).toEqual([]);
    });

    it("shows header values decoded, as the reader sees them", async () => {
      const headers = (await get(`/api/capture/${captureId}/messages/${captured}`)).json().parsed.headers as {
        key: string;
        value: string;
      }[];
      expect(headers.find((h) => h.key === "subject")?.value).toBe("Grüße aus Köln");
      expect(headers.find((h) => h.key === "to")?.value).toContain("Zoë");
    });

    it("downloads the .eml as a file to save", async () => {
      const res = await get(`/api/capture/${captureId}/messages/${captured}/raw`);
      expect(res.statusCode).toBe(200);
      expect(res.headers["content-type"]).toBe("message/rfc822");
      expect(res.headers["content-disposition"]).toBe(`attachment; filename="${captured}.eml"; filename*=UTF-8''${captured}.eml`);
      expect(res.headers["x-content-type-options"]).toBe("nosniff");
      expect(res.body).toContain("Subject: =?UTF-8?");
    });

    it("an HTML attachment with script is served as a download that cannot run on Mailroom's origin", async () => {
      const res = await get(`/api/capture/${captureId}/messages/${captured}/attachments/0`);
      expect(res.statusCode).toBe(200);
      expect(res.body).toBe(SCRIPT_HTML);
      // Never text/html: a browser opening the link saves the file instead of running it.
      expect(res.headers["content-type"]).toBe("application/octet-stream");
      expect(res.headers["content-disposition"]).toMatch(/^attachment; filename="evil\.html"/);
      expect(res.headers["x-content-type-options"]).toBe("nosniff");
      expect(res.headers["content-security-policy"]).toContain("sandbox");
      const notes = await get(`/api/capture/${captureId}/messages/${captured}/attachments/1`);
      expect(notes.body).toBe("notes");
      expectError(await get(`/api/capture/${captureId}/messages/${captured}/attachments/9`), 404, "message_not_found");
    });

    it("a name with quotes or line breaks cannot break out of Content-Disposition", async () => {
      const id = await send({
        server: "Capture",
        to: "a@example.com",
        subject: "odd name",
        text: "x",
        attachments: [
          { filename: 'a"; filename="x.html', contentType: "text/html", content: Buffer.from("x").toString("base64") },
        ],
      });
      const captureOf = (await settled(id)).providerMessageId;
      const res = await get(`/api/capture/${captureId}/messages/${captureOf}/attachments/0`);
      expect(res.headers["content-disposition"]).toBe(
        `attachment; filename="a__ filename__x.html"; filename*=UTF-8''${encodeURIComponent('a"; filename="x.html')}`,
      );
    });

    it("releases a captured message through a real server, with messages.send and messages.view", async () => {
      const sendOnly = await t.userWith(["messages.send"]);
      expectError(
        await t.request(sendOnly, {
          method: "POST",
          url: `/api/capture/${captureId}/messages/${captured}/release`,
          payload: { server: "Relay" },
        }),
        403,
        "forbidden",
      );
      smtp.clear();
      const res = await t.request(app, {
        method: "POST",
        url: `/api/capture/${captureId}/messages/${captured}/release`,
        payload: { server: "Relay", to: ["qa@example.com"] },
      });
      expect(res.statusCode, res.body).toBe(202);
      expect((await settled(res.json().id)).status).toBe("sent");
      const [received] = await smtp.waitForMessages(1);
      expect(received.envelope.to).toEqual(["qa@example.com"]);
      expect(received.subject).toBe("Grüße aus Köln");
      expect(received.attachments.map((a) => a.filename)).toEqual(["evil.html", "notes.txt"]);
      // Relay may not send as the captured sender: it sends as itself.
      expect(received.from).toBe("relay@example.com");
    });

    it("deletes one and then all, with email-servers.update (messages.view is not enough)", async () => {
      const viewer = await t.userWith(["messages.view"]);
      expectError(
        await t.request(viewer, { method: "DELETE", url: `/api/capture/${captureId}/messages/${captured}` }),
        403,
        "forbidden",
      );
      const one = await t.request(t.admin, { method: "DELETE", url: `/api/capture/${captureId}/messages/${captured}` });
      expect(one.statusCode).toBe(204);
      expectError(await get(`/api/capture/${captureId}/messages/${captured}`), 404, "message_not_found");
      expectError(
        await t.request(t.admin, { method: "DELETE", url: `/api/capture/${captureId}/messages/${captured}` }),
        404,
        "message_not_found",
      );
      const before = (await get(`/api/capture/${captureId}/messages`)).json().total;
      expect(before).toBeGreaterThan(0);
      const all = await t.request(t.admin, { method: "DELETE", url: `/api/capture/${captureId}/messages` });
      expect(all.json()).toEqual({ deleted: before });
      expect((await get(`/api/capture/${captureId}/messages`)).json()).toEqual({ items: [], total: 0 });
      const audit = (await get(`/api/audit?targetId=${captureId}`)).json().items.map((e: { action: string }) => e.action);
      expect(audit).toEqual(expect.arrayContaining(["capture.delete", "capture.delete_all"]));
    });
  });
});
