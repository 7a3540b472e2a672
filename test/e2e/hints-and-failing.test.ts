/**
 * Issue 12 points 5, 8 and 12, and issue 9's UI checks, in Chromium against real SMTP peers:
 * test hints that name the right fix, a failing server that explains itself, secret inputs
 * that take a value at once, and the users page for a manager with fewer permissions.
 */
import net from "node:net";
import path from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type SmtpPeer, startSmtpPeer } from "../peers/smtp-peer.js";
import { browserMissing, checkScreen, launchBrowser, newContext, SCREENSHOTS, visible, watchConsole } from "./browser.js";
import { ADMIN_EMAIL, ADMIN_PASSWORD, type E2eMailroom, startMailroom } from "./mailroom.js";

const missing = browserMissing();
const MANAGER = { email: "manager@example.com", password: "manager password 1234" };
const SENDER = { email: "sender@example.com", password: "sender password 1234" };
const ONE_TIME = "one-time password 1234";

/** A port nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe.skipIf(missing !== null)("hints, a failing server, secrets and managers in Chromium", { timeout: 120_000 }, () => {
  let mailroom: E2eMailroom;
  let plain: SmtpPeer;
  let implicitTls: SmtpPeer;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let consoleErrors: string[];

  /** Signs in through the API: a session cookie and its CSRF token, for set-up calls. */
  async function session(email: string, password: string) {
    const login = await fetch(`${mailroom.url}/api/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email, password }),
    });
    expect(login.status).toBe(200);
    const cookie = (login.headers.get("set-cookie") ?? "").split(";")[0];
    const { csrfToken } = (await login.json()) as { csrfToken: string };
    return async (method: string, route: string, body?: unknown) => {
      const response = await fetch(`${mailroom.url}${route}`, {
        method,
        headers: { cookie, "x-csrf-token": csrfToken, ...(body === undefined ? {} : { "content-type": "application/json" }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const json = (await response.json()) as Record<string, unknown>;
      expect(response.status, JSON.stringify(json)).toBeLessThan(300);
      return json;
    };
  }

  /** A user an admin created signs in for the first time: their one-time password becomes `password`. */
  async function ownPassword(email: string, password: string): Promise<void> {
    const login = await fetch(`${mailroom.url}/api/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email, password: ONE_TIME }),
    });
    const cookie = (login.headers.get("set-cookie") ?? "").split(";")[0];
    const { csrfToken } = (await login.json()) as { csrfToken: string };
    const changed = await fetch(`${mailroom.url}/api/auth/password`, {
      method: "POST",
      headers: { cookie, "x-csrf-token": csrfToken, "content-type": "application/json" },
      body: JSON.stringify({ currentPassword: ONE_TIME, newPassword: password }),
    });
    expect(changed.status).toBeLessThan(300);
  }

  async function signIn(email: string, password: string): Promise<void> {
    await page.context().clearCookies();
    await page.goto("/");
    await page.getByLabel("Email").fill(email);
    await page.getByLabel("Password").fill(password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await visible(page.getByRole("button", { name: "Sign out" }));
  }

  /** A new SMTP server's form, filled for a draft test. */
  async function smtpDraft(port: number, security: "starttls" | "tls" | "none", host = "127.0.0.1"): Promise<void> {
    await page.goto("/servers/new");
    const fields: [string, string][] = [
      ["#setting-host", host],
      ["#setting-port", String(port)],
      ["#setting-timeoutSeconds", "2"],
    ];
    // The form is drawn, then set to the driver's defaults once loaded: fill until it holds.
    await expect
      .poll(async () => {
        for (const [selector, value] of fields) await page.locator(selector).fill(value);
        await page.locator("#setting-security").selectOption(security);
        await page.getByLabel(/^Name/).fill(`Draft ${security} ${port}`);
        await page.getByLabel(/^From address/).fill("app@example.com");
        const values = await Promise.all(fields.map(([selector]) => page.locator(selector).inputValue()));
        return values.join(" ") === fields.map(([, value]) => value).join(" ");
      })
      .toBe(true);
  }

  /** Runs "Check connection" and returns the headline and the "What to do" of the failure. */
  async function failedCheck(): Promise<{ headline: string; hint: string }> {
    await page.getByRole("button", { name: "Check connection" }).click();
    const alert = page.locator(".test-report .alert");
    await visible(alert, 20_000);
    const headline = (await alert.locator("strong").textContent()) ?? "";
    const hint = ((await alert.locator(".hint-text").textContent()) ?? "").replace(/^What to do: /, "");
    // Said once: neither repeats the other.
    expect(headline).not.toBe("");
    expect(hint).not.toBe("");
    expect(headline).not.toContain(hint);
    expect(hint).not.toContain(headline);
    return { headline, hint };
  }

  beforeAll(async () => {
    plain = await startSmtpPeer({ security: "none" });
    implicitTls = await startSmtpPeer({ security: "tls" });
    // One server problem opens the breaker; the first probe waits an hour, so the page is read before it runs.
    mailroom = await startMailroom({ MAILROOM_BREAKER_THRESHOLD: "1", MAILROOM_PROBE_SCHEDULE: "3600" });
    browser = await launchBrowser();
    context = await newContext(browser, mailroom.url);
    page = await context.newPage();
    consoleErrors = watchConsole(page);
    await signIn(ADMIN_EMAIL, ADMIN_PASSWORD);
  }, 60_000);

  afterEach(async (ctx) => {
    if (ctx.task.result?.state !== "fail" || !page) return;
    const name = ctx.task.name.replace(/[^a-z0-9]+/gi, "-").slice(0, 60);
    await page.screenshot({ path: path.join(SCREENSHOTS, `FAILED-hints-${name}.png`), fullPage: true }).catch(() => {});
  });

  afterAll(async () => {
    await context?.close();
    await browser?.close();
    await mailroom?.stop();
    await plain?.close();
    await implicitTls?.close();
  });

  it("5. STARTTLS not offered says choose None or TLS, not a temporary error", async () => {
    await smtpDraft(plain.port, "starttls");
    const { headline, hint } = await failedCheck();
    expect(headline).toMatch(/does not offer STARTTLS\.$/);
    expect(hint).toMatch(/^Choose None or TLS/);
    expect(hint).not.toMatch(/temporary|retries/i);
  });

  it("5. TLS against a plain port is translated from OpenSSL: choose STARTTLS", async () => {
    await smtpDraft(plain.port, "tls");
    const { headline, hint } = await failedCheck();
    expect(headline).toContain("answered the TLS handshake in plain text (“wrong version number”)");
    expect(headline).not.toMatch(/ssl3_get_record|openssl/i);
    expect(hint).toMatch(/set Security to STARTTLS/);
  });

  it("5. a port that speaks TLS from the first byte is named, with TLS as the fix", async () => {
    await smtpDraft(implicitTls.port, "starttls");
    const { headline, hint } = await failedCheck();
    expect(headline).toMatch(/speaks TLS from the first byte/);
    expect(hint).toBe("The server speaks TLS from the first byte: set Security to TLS (usually port 465).");
  });

  it("5. a certificate from an unknown authority gets the certificate hint in words", async () => {
    await smtpDraft(implicitTls.port, "tls", "localhost");
    const { headline, hint } = await failedCheck();
    expect(headline).toMatch(/is not signed by an authority Mailroom trusts: it is self-signed or from a private CA/);
    expect(hint).toMatch(/turn off 'Verify certificate' only if you trust this server/);
  });

  it("5. no encryption is an amber warning, and a send test lists no 'nothing was sent' step", async () => {
    await smtpDraft(plain.port, "none");
    await page.getByRole("button", { name: "Check connection" }).click();
    await visible(page.getByText("The connection works, but read the warning below."), 20_000);
    const tls = page.locator(".test-report .step", { hasText: "TLS" });
    expect(await tls.getAttribute("class")).toBe("step warning");
    expect(await tls.locator(".step-icon").textContent()).toBe("!");
    expect(await tls.textContent()).toContain("passed, with a warning");
    const colour = await tls.evaluate((li) => getComputedStyle(li).backgroundColor);
    expect(colour).toBe("rgb(255, 248, 197)");
    await visible(page.locator(".test-report .step", { hasText: "nothing was sent" }));
    await checkScreen(page, "test-no-encryption-warning");

    await page.getByRole("button", { name: "Send test email" }).click();
    await visible(page.getByText(`The test email was sent to ${ADMIN_EMAIL}`), 20_000);
    await visible(page.locator(".test-report .step", { hasText: "Send the test email" }));
    expect(await page.locator(".test-report .step", { hasText: "Reset (RSET)" }).count()).toBe(0);
    expect(await page.getByText("nothing was sent").count()).toBe(0);
  });

  it("12. a new server's password is typed at once, and each Copy says what it copies", async () => {
    await smtpDraft(plain.port, "none");
    await page.getByLabel(/^Name/).fill("Relay");
    await page.locator("#setting-username").fill("app");
    expect(await page.getByRole("button", { name: /^Enter/ }).count()).toBe(0);
    const password = page.getByLabel("Password", { exact: true });
    await visible(password);
    expect(await page.evaluate(() => document.activeElement?.id)).not.toBe("setting-password");
    await password.fill("relay password 1234");
    await checkScreen(page, "server-new-password");
    await page.getByRole("button", { name: "Create server" }).click();
    await visible(page.getByText("Created “Relay”."));
    await visible(page.locator('[data-setting="password"]').getByText("Set", { exact: true }));

    // The per-field Copy buttons are named after their field, never just "Copy".
    const copyHost = page.locator('[data-setting="host"]').getByRole("button", { name: /^Cop/ });
    await visible(copyHost);
    expect(await page.getByRole("button", { name: "Copy Host", exact: true }).count()).toBe(1);
    expect(await page.getByRole("button", { name: "Copy", exact: true }).count()).toBe(0);
    await page.getByRole("button", { name: "Copy Host", exact: true }).click();
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe("127.0.0.1");
    // Copying does not rename the button ("Copied Host"): the outcome is said beside it.
    await visible(page.locator('[data-setting="host"] .copy-status', { hasText: "Copied" }));
    expect(await page.getByRole("button", { name: "Copy Host", exact: true }).count()).toBe(1);

    // Gmail: the client secret too, before the first save.
    await page.goto("/servers/new?driver=gmail");
    await visible(page.getByRole("heading", { name: "Connect Google Gmail" }));
    expect(await page.getByRole("button", { name: "Enter Client secret" }).count()).toBe(0);
    await visible(page.locator("#setting-clientSecret"));
    expect(await page.getByRole("button", { name: "Copy the redirect URI", exact: true }).count()).toBe(1);
    expect(await page.getByRole("button", { name: "Copy", exact: true }).count()).toBe(0);
  });

  it("8. a failing server says since when, what its last error means, and links its held mail", async () => {
    const admin = await session(ADMIN_EMAIL, ADMIN_PASSWORD);
    const port = await closedPort();
    const server = await admin("POST", "/api/email-servers", {
      name: "Down",
      driver: "smtp",
      fromAddress: "app@example.com",
      settings: { host: "127.0.0.1", port, security: "none", timeoutSeconds: 2 },
    });
    const { token } = (await admin("POST", "/api/tokens", { name: "Shop", permissions: ["messages.send", "messages.view"] })) as {
      token: string;
    };
    for (const subject of ["First", "Second"]) {
      const queued = await mailroom.api("POST", "/api/messages", token, {
        server: "Down",
        to: "a@example.com",
        subject,
        text: "x",
      });
      expect(queued.status).toBe(202);
    }
    await expect
      .poll(
        async () =>
          ((await admin("GET", `/api/email-servers/${server.id}`)) as { delivery: { heldMessages: number } }).delivery
            .heldMessages,
        {
          timeout: 20_000,
        },
      )
      .toBe(2);

    await page.goto(`/servers/${server.id}`);
    const state = page.locator(".delivery-state");
    await visible(state.getByText(/^Failing since \d\d:\d\d, (now|\d+ seconds? ago|\d+ minutes? ago)$/));
    await visible(state.getByText(/Last error: Nothing accepts connections on 127\.0\.0\.1:\d+/));
    await visible(state.getByText("(connection_refused)"));
    await visible(state.locator(".hint-text", { hasText: "What to do: Nothing accepts connections on that host and port" }));
    // The raw detail (code and ISO time) is not repeated in the page head.
    expect(await page.locator(".status-detail").count()).toBe(0);
    await visible(state.getByRole("button", { name: "Check now" }));
    await checkScreen(page, "server-failing-explained");

    await state.getByRole("link", { name: "2 held messages" }).click();
    await visible(page.getByRole("heading", { level: 1, name: "Messages" }));
    const url = new URL(page.url());
    expect(url.pathname).toBe("/messages");
    expect(url.searchParams.get("server")).toBe(server.id);
    expect(url.searchParams.get("status")).toBe("held");
    expect(await page.getByLabel("Status").inputValue()).toBe("held");
    await visible(page.getByRole("link", { name: "First" }));
    await visible(page.getByRole("link", { name: "Second" }));
  });

  it("issue 9: a manager sees why a user is out of reach, and deleting a user names the tokens that stop", async () => {
    const admin = await session(ADMIN_EMAIL, ADMIN_PASSWORD);
    const managers = await admin("POST", "/api/groups", { name: "Managers", permissions: ["users.manage", "messages.view"] });
    const senders = await admin("POST", "/api/groups", { name: "Senders", permissions: ["users.manage", "messages.send"] });
    const auditors = await admin("POST", "/api/groups", { name: "Auditors", permissions: ["audit.view"] });
    await admin("POST", "/api/users", { email: MANAGER.email, password: ONE_TIME, groupIds: [managers.id] });
    await admin("POST", "/api/users", { email: "auditor@example.com", password: ONE_TIME, groupIds: [auditors.id] });
    await admin("POST", "/api/users", { email: SENDER.email, password: ONE_TIME, groupIds: [senders.id] });
    await ownPassword(MANAGER.email, MANAGER.password);
    await ownPassword(SENDER.email, SENDER.password);
    const sender = await session(SENDER.email, SENDER.password);
    for (const name of ["Shop", "Billing"]) await sender("POST", "/api/tokens", { name, permissions: ["messages.send"] });

    await signIn(MANAGER.email, MANAGER.password);
    await page.goto("/users");
    const auditorRow = page.getByRole("row", { name: /auditor@example\.com/ });
    await visible(auditorRow.getByText(/You cannot change auditor@example\.com: they hold .*audit.*, which you do not have\./i));
    // No Edit or Delete that would only answer 403.
    expect(await auditorRow.getByRole("button").count()).toBe(0);
    await checkScreen(page, "users-manager-out-of-reach");

    // The admin deletes the sender: the dialog says their two tokens stop working.
    await signIn(ADMIN_EMAIL, ADMIN_PASSWORD);
    await page.goto("/users");
    await page.getByRole("button", { name: `Delete ${SENDER.email}` }).click();
    const dialog = page.getByRole("dialog");
    await visible(dialog.getByText("2 API tokens of theirs will stop working."));
    await page.getByRole("button", { name: "Cancel" }).click();
  });

  it("kept the page free of script errors", () => {
    expect(consoleErrors).toEqual([]);
  });
});
