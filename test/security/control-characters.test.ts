import type { InjectOptions } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { permissions } from "../../src/auth/permissions.js";
import { systemActor } from "../../src/core/audit.js";
import { ADMIN_EMAIL, ADMIN_PASSWORD, type Caller, startTestApp, type TestApp } from "../helpers/app.js";
import { availableDialects } from "../helpers/databases.js";

const TABLES = ["email_servers", "users", "groups", "api_tokens", "messages", "sessions", "audit_log"] as const;

describe.each(await availableDialects())("control characters at the edge on %s", (dialect) => {
  let t: TestApp;
  let caller: Caller;
  let captureId: string;

  beforeAll(async () => {
    t = await startTestApp(dialect);
    const { token } = await t.mailroom.tokens.create({ name: "edge", permissions: [...permissions] }, systemActor, null);
    caller = { headers: { authorization: `Bearer ${token}` } };
    captureId = (await t.mailroom.servers.getRow("Capture")).id;
  });
  afterAll(() => t.close());

  async function counts(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const table of TABLES) {
      const { n } = await t.mailroom.ctx.db
        .selectFrom(table)
        .select((eb) => eb.fn.countAll<number>().as("n"))
        .executeTakeFirstOrThrow();
      out[table] = Number(n);
    }
    return out;
  }

  const message = { to: "a@example.com", subject: "Hello" };
  const NUL = "\u0000";

  it.each<[string, InjectOptions, string]>([
    ["NUL in a subject", { method: "POST", url: "/api/messages", payload: { ...message, subject: `Hi${NUL}` } }, "subject"],
    [
      "NUL in an idempotency key",
      { method: "POST", url: "/api/messages", payload: { ...message, idempotencyKey: `key${NUL}` } },
      "idempotencyKey",
    ],
    ["NUL in a text body", { method: "POST", url: "/api/messages", payload: { ...message, text: `a${NUL}b` } }, "text"],
    [
      "NUL deep in a batch's address list",
      {
        method: "POST",
        url: "/api/messages/batch",
        payload: { messages: [message, { ...message, to: ["b@example.com", `c${NUL}@example.com`] }] },
      },
      "messages.1.to.1",
    ],
    [
      "NUL in a header's name",
      { method: "POST", url: "/api/messages", payload: { ...message, headers: { [`X-A${NUL}`]: "1" } } },
      "headers",
    ],
    [
      "NUL in a driver setting",
      {
        method: "POST",
        url: "/api/email-servers",
        payload: { name: "Edge", driver: "smtp", settings: { host: `smtp${NUL}.example.com` } },
      },
      "settings.host",
    ],
    ["BEL in a subject", { method: "POST", url: "/api/messages", payload: { ...message, subject: "Ding\u0007" } }, "subject"],
    ["ESC in a user's name", { method: "POST", url: "/api/groups", payload: { name: "\u001b[31mred", permissions: [] } }, "name"],
    ["DEL in a token name", { method: "POST", url: "/api/tokens", payload: { name: "del\u007f", permissions: [] } }, "name"],
    [
      "LF in an idempotency key",
      { method: "POST", url: "/api/messages", payload: { ...message, idempotencyKey: "a\nb" } },
      "idempotencyKey",
    ],
    ["TAB in a group name", { method: "POST", url: "/api/groups", payload: { name: "a\tb", permissions: [] } }, "name"],
    ["NUL in search q", { method: "GET", url: "/api/email-servers?q=%00" }, "querystring.q"],
    ["LF in search q", { method: "GET", url: "/api/email-servers?q=a%0Ab" }, "querystring.q"],
    ["NUL in a message filter", { method: "GET", url: "/api/messages?recipient=a%00b" }, "querystring.recipient"],
    ["NUL in an audit filter", { method: "GET", url: "/api/audit?targetId=%00" }, "querystring.targetId"],
    ["NUL in a message id", { method: "GET", url: "/api/messages/%00" }, "params.id"],
    ["NUL in a retried message id", { method: "POST", url: "/api/messages/x%00/retry" }, "params.id"],
    ["NUL in a server id", { method: "GET", url: "/api/email-servers/a%00b" }, "params.id"],
    ["NUL in a copied server id", { method: "POST", url: "/api/email-servers/%00/copy", payload: {} }, "params.id"],
    ["NUL in a setting key", { method: "DELETE", url: "/api/email-servers/x/settings/%00" }, "params.key"],
    ["NUL in a user id", { method: "DELETE", url: "/api/users/%00" }, "params.id"],
    ["NUL in a token id", { method: "DELETE", url: "/api/tokens/%00" }, "params.id"],
    ["NUL in a capture server id", { method: "GET", url: "/api/capture/%00/messages" }, "params.serverId"],
    ["NUL in a captured message id", { method: "GET", url: "/api/capture/x/messages/%00" }, "params.id"],
  ])("refuses %s with 400 control_characters naming the field", async (_, request, field) => {
    const before = await counts();
    const res = await t.request(caller, request);
    expect(res.statusCode, res.body).toBe(400);
    const body = res.json();
    expect(body.code).toBe("control_characters");
    expect(body.message).toContain(field);
    expect(body.message).toMatch(/remove it/);
    expect(body.details[0].field).toBe(field);
    expect(await counts()).toEqual(before);
  });

  it("refuses a NUL in the login email before any sign-in, and stores no session", async () => {
    const before = await counts();
    for (const email of [`${ADMIN_EMAIL}${NUL}`, `${NUL}`, `${ADMIN_EMAIL}\n`]) {
      const res = await t.app.inject({ method: "POST", url: "/api/auth/login", payload: { email, password: ADMIN_PASSWORD } });
      expect(res.statusCode, res.body).toBe(400);
      expect(res.json()).toMatchObject({ code: "control_characters", details: [{ field: "email" }] });
    }
    expect(await counts()).toEqual(before);
  });

  it("answers an anonymous caller 401 before looking at its strings", async () => {
    const res = await t.app.inject({ method: "GET", url: "/api/messages/%00" });
    expect(res.statusCode).toBe(401);
  });

  it("refuses a NUL in a plain-text body too", async () => {
    const res = await t.request(caller, {
      method: "POST",
      url: `/api/email-servers/${captureId}/copy`,
      headers: { "content-type": "text/plain" },
      payload: `x${NUL}`,
    });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: "control_characters", details: [{ field: "body" }] });
  });

  it("walks a deeply nested body without exhausting the stack", async () => {
    const depth = 30_000;
    const res = await t.request(caller, {
      method: "POST",
      url: "/api/messages",
      headers: { "content-type": "application/json" },
      payload: `${"[".repeat(depth)}"${"\\u0000"}"${"]".repeat(depth)}`,
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().code).toBe("control_characters");
  });

  it("keeps line breaks and tabs in text, html and attachment content, and refuses NUL there", async () => {
    const text = "Line one\r\n\tindented\nend";
    const html = "<p>\n\tHello\r\n</p>";
    const content = `${Buffer.from("a".repeat(100)).toString("base64").slice(0, 76)}\r\n${Buffer.from("b").toString("base64")}`;
    const res = await t.request(caller, {
      method: "POST",
      url: "/api/messages",
      payload: { ...message, text, html, attachments: [{ filename: "a.txt", content }] },
    });
    expect(res.statusCode, res.body).toBe(202);
    const { payload } = await t.mailroom.ctx.db
      .selectFrom("messages")
      .select("payload")
      .where("id", "=", res.json().id)
      .executeTakeFirstOrThrow();
    expect(JSON.parse(payload)).toMatchObject({ text, html });

    const refused = await t.request(caller, {
      method: "POST",
      url: "/api/messages",
      payload: { ...message, attachments: [{ filename: "a.txt", content: `YQ==${NUL}` }] },
    });
    expect(refused.json()).toMatchObject({ code: "control_characters", details: [{ field: "attachments.0.content" }] });
  });

  it("still answers header_injection for a line break in a message's headers", async () => {
    for (const payload of [
      { ...message, subject: "Hi\r\nBcc: victim@example.com" },
      { ...message, headers: { "X-A": "1\nBcc: victim@example.com" } },
      { messages: [{ ...message, to: [{ address: "a@example.com", name: "A\nB" }] }] },
    ]) {
      const url = "messages" in payload ? "/api/messages/batch" : "/api/messages";
      const res = await t.request(caller, { method: "POST", url, payload });
      expect(res.statusCode).toBe(400);
      expect(res.json().code).toBe("header_injection");
    }
  });

  it("lets a provider's multi-line error_description through to the OAuth callback", async () => {
    const res = await t.app.inject({
      method: "GET",
      url: "/oauth/microsoft/callback?error=access_denied&error_description=AADSTS65004%3A+declined.%0D%0ATrace+ID%3A+1&state=x",
    });
    expect(res.statusCode).toBe(303);
    const nul = await t.app.inject({ method: "GET", url: "/oauth/microsoft/callback?error=x&error_description=a%00&state=x" });
    expect(nul.json()).toMatchObject({ code: "control_characters", details: [{ field: "querystring.error_description" }] });
  });
});
