/**
 * The admin UI in a real browser (Debian's Chromium) against a real Mailroom process, a real
 * SMTP server and a real OAuth issuer. The scenarios run in order and share one Mailroom:
 * each builds on what the one before created, as an administrator would.
 */
import { rmSync } from "node:fs";
import path from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { answers, type MockIssuer, startIssuer } from "../oauth/issuer.js";
import { type SmtpPeer, startSmtpPeer } from "../peers/smtp-peer.js";
import {
  blockedSandboxScripts,
  browserMissing,
  checked,
  checkScreen,
  gone,
  launchBrowser,
  newContext,
  SCREENSHOTS,
  visible,
  watchConsole,
} from "./browser.js";
import { ADMIN_EMAIL, ADMIN_PASSWORD, type E2eMailroom, startMailroom } from "./mailroom.js";

const missing = browserMissing();
if (missing) console.warn(`Skipping the browser tests: ${missing}.`);

const SMTP_USER = "relay-user";
const SMTP_PASSWORD = "smtp-pass-Zq7-unique-8841";
const WRONG_PASSWORD = "wrong-pass-Kx2-unique-5530";
const CLIENT_SECRET = "gmail-client-secret-Yt5-unique-2207";
const VIEWER_EMAIL = "viewer@example.com";
const VIEWER_PASSWORD = "viewer password 123";
const VIEWER_OWN_PASSWORD = "viewer password 789";
const VIEWER_NEW_PASSWORD = "viewer password 456";
/** Every secret typed into the UI: none may ever show in the page's HTML. */
const SECRETS = [SMTP_PASSWORD, WRONG_PASSWORD, CLIENT_SECRET];

describe.skipIf(missing !== null)("admin UI in Chromium", { timeout: 90_000 }, () => {
  let mailroom: E2eMailroom;
  let smtp: SmtpPeer;
  let issuer: MockIssuer;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let consoleErrors: string[];
  let apiToken = "";
  const html: string[] = [];

  /** Checks the screen (axe, both widths, screenshots) and keeps its HTML for the secret check. */
  async function screen(name: string): Promise<void> {
    html.push(await page.content());
    await checkScreen(page, name);
  }

  async function signIn(email: string, password: string): Promise<void> {
    await page.goto("/");
    await page.getByLabel("Email").fill(email);
    await page.getByLabel("Password").fill(password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await visible(page.getByRole("button", { name: "Sign out" }));
  }

  async function openServer(name: string): Promise<void> {
    await page.goto("/servers");
    await page.getByRole("link", { name, exact: true }).click();
    await visible(page.getByRole("heading", { level: 1, name }));
  }

  /** A driver setting's control, by its key. */
  function setting(key: string) {
    return page.locator(`#setting-${key}`);
  }

  /** Queues a message with the API token and waits until it is sent or failed. */
  async function send(message: Record<string, unknown>): Promise<{ id: string; status: string }> {
    const queued = await mailroom.api("POST", "/api/messages", apiToken, message);
    expect(queued.status, JSON.stringify(queued.json)).toBe(202);
    const { id } = queued.json as { id: string };
    let status = "queued";
    await expect
      .poll(
        async () => {
          status = ((await mailroom.api("GET", `/api/messages/${id}`, apiToken)).json as { status: string }).status;
          return status === "sent" || status === "failed";
        },
        { timeout: 15_000 },
      )
      .toBe(true);
    return { id, status };
  }

  async function clipboard(): Promise<string> {
    return page.evaluate(() => navigator.clipboard.readText());
  }

  beforeAll(async () => {
    rmSync(SCREENSHOTS, { recursive: true, force: true });
    smtp = await startSmtpPeer({ security: "none", auth: { user: SMTP_USER, password: SMTP_PASSWORD } });
    issuer = await startIssuer("google");
    mailroom = await startMailroom(issuer.env);
    browser = await launchBrowser();
    context = await newContext(browser, mailroom.url);
    page = await context.newPage();
    consoleErrors = watchConsole(page);
  }, 60_000);

  afterEach(async (context) => {
    if (context.task.result?.state !== "fail" || !page) return;
    const name = context.task.name.replace(/[^a-z0-9]+/gi, "-").slice(0, 60);
    await page.screenshot({ path: path.join(SCREENSHOTS, `FAILED-${name}.png`), fullPage: true }).catch(() => {});
  });

  afterAll(async () => {
    await context?.close();
    await browser?.close();
    await mailroom?.stop();
    await smtp?.close();
    await issuer?.stop();
    const summary = checked.map(
      (c) => `${c.name}@${c.width}: ${c.problems.length ? c.problems.join("; ") : "no serious or critical violations"}`,
    );
    console.log(`axe-core, ${checked.length} checks:\n${summary.join("\n")}`);
  });

  it("signs in, by keyboard alone, after a wrong password", async () => {
    await page.goto("/");
    await visible(page.getByRole("heading", { name: "Sign in" }));
    await page.getByText("First start?").click();
    await screen("signin");

    await page.getByLabel("Email").fill(ADMIN_EMAIL);
    await page.getByLabel("Password").fill("not the password");
    await page.getByRole("button", { name: "Sign in" }).click();
    await visible(page.getByText("do not match an active account"));

    // Keyboard only: Tab to each field, type, Enter.
    await page.goto("/");
    await visible(page.getByRole("heading", { name: "Sign in" }));
    await page.keyboard.press("Tab");
    expect(await page.evaluate(() => document.activeElement?.id)).toBe("signin-email");
    await page.keyboard.type(ADMIN_EMAIL);
    await page.keyboard.press("Tab");
    await page.keyboard.type(ADMIN_PASSWORD);
    await page.keyboard.press("Enter");
    await visible(page.getByRole("heading", { level: 1, name: "Overview" }));
    // Focus is visible: the focused control draws an outline.
    await page.keyboard.press("Tab");
    await page.keyboard.press("Tab");
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement as Element).outlineStyle);
    expect(outline).not.toBe("none");
  });

  it("creates a Capture server, sends a test email and shows it in Messages with its preview", async () => {
    await page.goto("/servers");
    await visible(page.getByRole("row", { name: /Capture/ }));
    await screen("servers");

    await page.getByRole("link", { name: "New server" }).click();
    await visible(page.getByRole("heading", { level: 1, name: "New email server" }));
    await screen("server-new");
    await page.getByLabel("Driver").selectOption({ label: "Capture" });
    await visible(setting("retention"));
    await page.getByLabel(/^Name/).fill("Dev capture");
    await page.getByLabel(/^From address/).fill("app@example.com");
    await page.getByLabel("From name").fill("Example App");
    await page.getByRole("button", { name: "Create server" }).click();
    await visible(page.getByText("Created “Dev capture”."));
    await visible(page.getByRole("heading", { level: 1, name: /Dev capture/ }));

    // The admin's own address is prefilled.
    expect(await page.getByLabel("Send to").inputValue()).toBe(ADMIN_EMAIL);
    await page.getByRole("button", { name: "Send test email" }).click();
    await visible(page.getByText(`The test email was sent to ${ADMIN_EMAIL}`));
    await visible(page.locator(".step.ok", { hasText: "Send the test email" }));
    await screen("server-capture-tested");

    // The captured test email, with its preview: from the test's link, and from Messages.
    await page.getByRole("link", { name: "Open it in Captured mail" }).click();
    await visible(page.getByRole("heading", { level: 1, name: 'Mailroom test message from "Dev capture"' }));
    await page.getByRole("link", { name: "Captured mail" }).click();
    await visible(page.getByRole("link", { name: 'Mailroom test message from "Dev capture"' }));
    expect(await page.getByLabel("Capture server").inputValue()).not.toBe("");
    await screen("captured-list");
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Messages" }).click();
    await page.getByRole("link", { name: "Captured mail", exact: true }).click();
    await page.getByLabel("Capture server").selectOption({ label: "Dev capture" });
    await page.getByRole("link", { name: 'Mailroom test message from "Dev capture"' }).click();
    await visible(page.getByRole("tab", { name: "Text" }));
    await visible(page.getByText("If you can read it, the server works."));
    await screen("captured-message");
    await page.getByRole("tab", { name: /Headers/ }).click();
    await visible(page.getByRole("rowheader", { name: "Subject" }));
  });

  it("creates an API token shown once, and a message sent with it shows in the log with its HTML preview", async () => {
    await page.goto("/tokens");
    await page.getByRole("button", { name: "New token" }).click();
    await page.getByLabel(/^Name/).fill("Billing app");
    await page.getByLabel(/View messages/).check();
    await page.getByRole("button", { name: "Create token" }).click();
    await visible(page.getByText("it is shown only once"));
    apiToken = (await page.locator("#new-token").textContent())?.trim() ?? "";
    expect(apiToken.length).toBeGreaterThan(20);
    await page.getByRole("button", { name: "Copy the new token" }).click();
    expect(await clipboard()).toBe(apiToken);
    await screen("tokens");
    // Shown once: after a reload only its prefix is left.
    await page.reload();
    await visible(page.getByRole("rowheader", { name: /Billing app/ }));
    expect(await page.content()).not.toContain(apiToken);

    const invoice = await send({
      server: "Dev capture",
      to: "customer@example.com",
      subject: "Your invoice",
      text: "Invoice attached.",
      html: '<h1 id="greeting">Hello</h1><p>Your invoice is ready.</p><script>parent.document.title = "escaped";</script>',
      attachments: [{ filename: "invoice.txt", contentType: "text/plain", content: Buffer.from("total: 42").toString("base64") }],
    });
    expect(invoice.status).toBe("sent");
    for (const n of [1, 2, 3]) {
      await send({ server: "Dev capture", to: `user${n}@example.com`, subject: `Welcome, user ${n}`, text: "Hello." });
    }

    await page.goto("/messages");
    await visible(page.getByRole("link", { name: "Your invoice" }));
    await page.getByLabel("Search").fill("customer@");
    await visible(page.getByText("1 message", { exact: true }));
    await page.getByLabel("Status").selectOption("sent");
    await visible(page.getByRole("link", { name: "Your invoice" }));
    await screen("messages");

    await page.getByRole("link", { name: "Your invoice" }).click();
    await visible(page.getByRole("heading", { name: "Attempts" }));
    await visible(page.getByRole("cell", { name: /sent/ }).first());
    const frame = page.locator("iframe.html-preview");
    await visible(frame);
    // Sandboxed with no permissions at all: its script never ran.
    expect(await frame.getAttribute("sandbox")).toBe("");
    expect(await page.frameLocator("iframe.html-preview").locator("#greeting").textContent()).toBe("Hello");
    expect(await page.title()).not.toBe("escaped");
    expect(blockedSandboxScripts.length).toBeGreaterThan(0);
    await page.getByRole("tab", { name: /Attachments/ }).click();
    await visible(page.getByText("invoice.txt"));
    await page.getByRole("tab", { name: "HTML", exact: true }).click();
    await page.frameLocator("iframe.html-preview").locator("#greeting").waitFor();
    await screen("message");
  });

  it("checks an SMTP server's connection step by step, then shows the 535 hint for a broken password", async () => {
    await page.goto("/servers/new");
    await page.getByLabel(/^Name/).fill("Relay");
    await page.getByLabel(/^From address/).fill("app@example.com");
    await setting("host").fill("127.0.0.1");
    await setting("port").fill(String(smtp.port));
    await setting("security").selectOption("none");
    await setting("username").fill(SMTP_USER);
    await page.locator("#setting-password").fill(SMTP_PASSWORD);
    expect(await page.content()).not.toContain(SMTP_PASSWORD);
    await page.getByRole("button", { name: "Create server" }).click();
    await visible(page.getByText("Created “Relay”."));
    await visible(page.locator('[data-setting="password"]').getByText("Set", { exact: true }));

    await page.getByRole("button", { name: "Check connection" }).click();
    // Security None: it works, with the missing encryption as a warning.
    await visible(page.getByText("The connection works, but read the warning below. No email was sent."));
    await visible(page.locator(".step.warning", { hasText: "TLS" }));
    for (const step of ["Connect", "Greeting (EHLO)", "Log in"]) {
      await visible(page.locator(".step.ok", { hasText: step }));
    }
    expect(smtp.sawData).toBe(false);
    await page.getByText(/^Transcript/).click();
    await visible(page.locator(".transcript pre"));
    await screen("server-smtp-checked");

    // Mail through it: the peer refuses one recipient, so some messages fail for good.
    smtp.setFaults({ rejectRecipients: ["nobody@example.com"] });
    const outcomes: string[] = [];
    for (const to of ["ann@example.com", "bob@example.com", "nobody@example.com", "cid@example.com", "nobody@example.com"]) {
      outcomes.push((await send({ server: "Relay", to, subject: `Report for ${to}`, text: "Numbers inside." })).status);
    }
    expect(outcomes.filter((o) => o === "failed")).toHaveLength(2);
    await openServer("Relay");

    // Break the password without saving: the draft test borrows nothing but the new value.
    await page.getByRole("button", { name: "Replace Password" }).click();
    await page.locator("#setting-password").fill(WRONG_PASSWORD);
    await page.getByRole("button", { name: "Check connection" }).click();
    await visible(page.locator(".step.failed", { hasText: "Log in" }));
    await visible(page.getByText("What to do:"));
    await visible(page.getByText(/rejected the username or password \(535\)/));
    expect(await page.content()).not.toContain(WRONG_PASSWORD);
    await screen("server-smtp-failed");

    // Leaving with unsaved changes asks first; staying keeps them.
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Email servers" }).click();
    await visible(page.getByRole("dialog", { name: "Leave without saving?" }));
    await page.getByRole("button", { name: "Stay on this page" }).click();
    await visible(page.getByText("Unsaved changes"));
    await page.getByRole("button", { name: "Discard changes" }).click();
    await visible(page.getByText("All changes saved"));
  });

  it("asks for the password again when the host changes: a saved password goes only where it was saved for", async () => {
    await openServer("Relay");
    const before = smtp.connections;
    await setting("host").fill("localhost");
    const note = page.getByText("Host changed, so enter Password again");
    await visible(note);
    expect(await setting("password").getAttribute("required")).not.toBeNull();
    await page.getByRole("button", { name: "Check connection" }).click();
    await visible(page.getByText("Enter it again: Host changed."));
    expect(smtp.connections).toBe(before);
    await screen("server-smtp-host-changed");
    // Back to the saved host: the saved password is kept again, nothing to type.
    await setting("host").fill("127.0.0.1");
    await note.waitFor({ state: "detached" });
    await visible(page.locator('[data-setting="password"]').getByRole("button", { name: "Replace Password" }));
  });

  it("shows a failed message with the server's answer, and retries it", async () => {
    await page.goto("/messages?status=failed");
    await visible(page.getByRole("link", { name: "Report for nobody@example.com" }));
    await page.getByRole("link", { name: "Report for nobody@example.com" }).first().click();
    await visible(page.getByRole("heading", { name: "Attempts" }));
    await visible(page.locator(".attempts code", { hasText: "550" }));
    await screen("message-failed");

    smtp.setFaults({});
    // Refused for good (550): the page asks before sending it again unchanged.
    await page.getByRole("button", { name: "Retry" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Retry anyway" }).click();
    // The page looks again while the message waits, until it is sent.
    await visible(page.locator(".status-line .pill", { hasText: "Sent" }), 20_000);
    expect(await page.getByRole("button", { name: "Retry" }).count()).toBe(0);
  });

  it("connects a Gmail server through the OAuth issuer, shows the account, then disconnects", async () => {
    await page.goto("/servers/new?driver=gmail");
    await visible(page.getByRole("heading", { name: "Connect Google Gmail" }));
    await page.getByLabel(/^Name/).fill("Gmail");
    await page.getByLabel(/^From address/).fill("sender@example.com");
    await setting("clientId").fill("mailroom-e2e.apps.example");
    await page.locator("#setting-clientSecret").fill(CLIENT_SECRET);
    await page.getByRole("button", { name: "Create server" }).click();
    await visible(page.getByText("Created “Gmail”."));
    await visible(page.getByText("Not authorized", { exact: true }).first());

    await page.getByRole("button", { name: "Copy the redirect URI" }).click();
    expect(await clipboard()).toBe(`${mailroom.url}/oauth/google/callback`);

    // To the issuer and back through Mailroom's callback, in this browser with its session.
    await page.getByRole("button", { name: "Authorize account" }).click();
    await visible(page.getByText("The account is authorized: this server can send now."), 15_000);
    expect(new URL(page.url()).search).toBe("");
    await visible(page.locator(".pill", { hasText: "Ready" }));
    await visible(page.locator(".account-name", { hasText: "sender@example.com" }));
    await visible(page.getByText("https://mail.google.com/", { exact: false }));
    await screen("server-gmail-authorized");
    // A from address other than the authorized account gets a warning, even before saving.
    await page.getByLabel(/^From address/).fill("someone-else@example.com");
    await visible(page.getByText("is not the authorized account sender@example.com"));
    await page.getByRole("button", { name: "Discard changes" }).click();

    await page.getByRole("button", { name: "Disconnect" }).click();
    await visible(page.getByRole("dialog", { name: /Disconnect sender@example.com/ }));
    await page.getByRole("dialog").getByRole("button", { name: "Disconnect" }).click();
    await visible(page.getByText("No account is authorized yet"));
    expect(issuer.revocations).toBe(1);

    // A refusal comes back as a precise banner with the fix.
    issuer.next.push(answers.invalidClient());
    await page.getByRole("button", { name: "Authorize account" }).click();
    await visible(
      page.getByText(/Authorization failed \(oauth_invalid_client\): The provider rejected the client ID or client secret/),
      15_000,
    );
    await visible(page.getByText("No account is authorized yet"));
    // A reply Mailroom cannot tie to a server lands on the list, with the reason.
    await page.goto("/oauth/google/callback?state=not-one-of-ours&code=whatever");
    await visible(page.getByText(/Authorization failed \(oauth_state_invalid\)/));
    expect(new URL(page.url()).pathname).toBe("/servers");
  });

  it("sets up Microsoft 365 with application credentials: the method's fields and steps, ready without authorizing", async () => {
    await page.goto("/servers/new?driver=microsoft365");
    await visible(page.getByRole("heading", { name: "Connect Microsoft 365" }));
    await page.getByLabel(/^Name/).fill("M365 app");
    await page.getByLabel(/^From address/).fill("sender@example.com");
    await setting("authMethod").selectOption("client_secret");
    await visible(page.getByRole("heading", { name: "Application credentials" }));
    await visible(page.getByText("SMTP.SendAsApp", { exact: false }).first());
    // The delegated flow's parts are gone: no Authorize account, no redirect URI.
    expect(await page.getByRole("heading", { name: "Connect Microsoft 365" }).count()).toBe(0);
    expect(await page.locator('[data-setting="redirectUri"]').count()).toBe(0);
    await setting("tenant").fill("contoso.example");
    await setting("clientId").fill("3f1b2c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d");
    await page.locator("#setting-clientSecret").fill(CLIENT_SECRET);
    // The certificate method shows its own fields instead of the secret.
    await setting("authMethod").selectOption("certificate");
    await visible(page.locator("#setting-certificate"));
    expect(await page.locator("#setting-clientSecret").count()).toBe(0);
    await setting("authMethod").selectOption("client_secret");
    await page.locator("#setting-clientSecret").fill(CLIENT_SECRET);
    await page.getByRole("button", { name: "Create server" }).click();
    await visible(page.getByText("Created “M365 app”."));
    await visible(page.locator(".pill", { hasText: "Ready" }));
    await screen("server-microsoft365-app-only");
  });

  it("shows Microsoft Graph's application steps: Graph's Mail.Send, not SMTP's permission", async () => {
    await page.goto("/servers/new?driver=microsoft-graph");
    await setting("authMethod").selectOption("certificate");
    await visible(page.getByRole("heading", { name: "Application credentials" }));
    await visible(page.getByText("application permission Mail.Send of Microsoft Graph", { exact: false }));
    expect(await page.getByText("SMTP.SendAsApp", { exact: false }).count()).toBe(0);
    await visible(page.locator("#setting-certificate"));
    expect(await page.locator('[data-setting="redirectUri"]').count()).toBe(0);
  });

  it("keeps a choice made on a new server's form while an earlier load of the form still answers", async () => {
    // These tests run a development build of the UI (vitest sets NODE_ENV=test), in which
    // React's StrictMode runs the form's load twice on mount. The first load's drivers are held
    // here until the choice is made, as a slow answer under load was in CI: answering after
    // it, that load used to put the form back to its first state.
    const tab = await context.newPage();
    const errors = watchConsole(tab);
    // Counts the drivers answers the page has read: at 2, both loads have done all they do.
    await tab.addInitScript(() => {
      const text = Response.prototype.text;
      Response.prototype.text = async function (this: Response) {
        const body = await text.call(this);
        if (new URL(this.url).pathname === "/api/drivers") {
          const w = window as unknown as { driversRead?: number };
          w.driversRead = (w.driversRead ?? 0) + 1;
        }
        return body;
      };
    });
    let release = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let requests = 0;
    await tab.route("**/api/drivers", async (route) => {
      const first = ++requests === 1;
      const response = await route.fetch();
      if (first) await held;
      await route.fulfill({ response });
    });
    await tab.goto("/servers/new?driver=microsoft-graph");
    await expect.poll(() => requests, { message: "the form loads twice (StrictMode, development build)" }).toBe(2);
    await tab.locator("#setting-authMethod").selectOption("certificate");
    await visible(tab.getByRole("heading", { name: "Application credentials" }));
    release();
    await tab.waitForFunction(() => (window as unknown as { driversRead?: number }).driversRead === 2);
    // A frame and a task for React to render what that load set, if anything.
    await tab.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve))));
    expect(await tab.locator("#setting-authMethod").inputValue()).toBe("certificate");
    await visible(tab.getByRole("heading", { name: "Application credentials" }));
    expect(errors).toEqual([]);
    await tab.close();
  });

  it("copies and clears settings, copies a server, makes it the default and deletes (never the default)", async () => {
    // Copy one setting to the clipboard; clear another back to its default; clear a secret.
    await openServer("Relay");
    await page.getByRole("button", { name: "Copy Host" }).click();
    expect(await clipboard()).toBe("127.0.0.1");
    expect(await page.getByRole("button", { name: "Clear Timeout (seconds) (back to its default)" }).isDisabled()).toBe(true);
    await setting("timeoutSeconds").fill("45");
    await page.getByRole("button", { name: "Save" }).click();
    await visible(page.getByText("Saved “Relay”."));
    await page.getByRole("button", { name: "Clear Timeout (seconds) (back to its default)" }).click();
    expect(await setting("timeoutSeconds").inputValue()).toBe("30");
    await page.getByRole("button", { name: "Clear Password" }).click();
    await visible(page.getByText("will be cleared when you save"));
    await page.getByRole("button", { name: "Save" }).click();
    await visible(page.getByText("Saved “Relay”."));
    await visible(page.locator('[data-setting="password"]').getByText("Not set", { exact: true }));
    expect(await setting("timeoutSeconds").inputValue()).toBe("30");

    // A validation error shows beside its field.
    await setting("port").fill("70000");
    await page.getByRole("button", { name: "Save" }).click();
    await visible(page.locator("#error-port", { hasText: "at most 65535" }));
    await page.getByRole("button", { name: "Discard changes" }).click();

    // Copy a server, make the copy the default, delete the old default.
    await page.goto("/servers");
    await page.getByRole("button", { name: "Copy Dev capture" }).click();
    await visible(page.getByText(/Copied “Dev capture” as “(.+)”/));
    const copyName = (await page.locator(".alert-success").textContent())?.match(/as “(.+?)”/)?.[1] ?? "";
    expect(copyName).not.toBe("");

    const defaultDelete = page.getByRole("button", { name: "Delete Capture", exact: true });
    expect(await defaultDelete.isDisabled()).toBe(true);
    await visible(page.getByText("The default server can’t be deleted"));

    await page.getByRole("button", { name: `Make default: ${copyName}` }).click();
    await visible(page.getByText(`“${copyName}” is now the default server.`));
    // Default first.
    expect(await page.locator("tbody tr").first().textContent()).toContain(copyName);
    expect(await page.getByRole("button", { name: `Delete ${copyName}`, exact: true }).isDisabled()).toBe(true);

    // By keyboard: the dialog names the server, starts on Cancel, Escape closes it and focus comes back.
    const deleteCapture = page.getByRole("button", { name: "Delete Capture", exact: true });
    await deleteCapture.focus();
    await page.keyboard.press("Enter");
    await visible(page.getByRole("dialog", { name: "Delete “Capture”?" }));
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe("Cancel");
    await page.keyboard.press("Escape");
    await gone(page.getByRole("dialog"));
    expect(await page.evaluate(() => document.activeElement?.getAttribute("aria-label"))).toBe("Delete Capture");
    await page.keyboard.press("Enter");
    await visible(page.getByRole("dialog"));
    await page.keyboard.press("Tab");
    await page.keyboard.press("Enter");
    await visible(page.getByText("Deleted “Capture”."));
    await gone(page.getByRole("link", { name: "Capture", exact: true }));

    await screen("servers-after-changes");

    // Search filters as you type.
    await page.getByLabel("Search").fill("relay");
    await visible(page.getByText("1 server match “relay”"));
    await gone(page.getByRole("link", { name: "Gmail", exact: true }));
  });

  it("opens the menu on a phone-sized window by keyboard", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto("/servers");
    const menu = page.getByRole("button", { name: "Menu" });
    await visible(menu);
    expect(await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Audit log" }).isVisible()).toBe(false);
    await menu.focus();
    await page.keyboard.press("Enter");
    expect(await menu.getAttribute("aria-expanded")).toBe("true");
    const audit = page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Audit log" });
    await visible(audit);
    await audit.focus();
    await page.keyboard.press("Enter");
    await visible(page.getByRole("heading", { level: 1, name: "Audit log" }));
    expect(await menu.getAttribute("aria-expanded")).toBe("false");
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it("manages groups and users, and shows the audit log and the overview chart", async () => {
    await page.goto("/groups");
    await page.getByRole("button", { name: "New group" }).click();
    await page.getByLabel(/^Name/).fill("Viewers");
    await page.getByLabel(/View email servers/).check();
    await page.getByLabel(/View messages/).check();
    await page.getByRole("button", { name: "Create group" }).click();
    await visible(page.getByText("Created the group Viewers."));
    await screen("groups");

    await page.goto("/users");
    await page.getByRole("button", { name: "New user" }).click();
    await page.locator("#user-new-email").fill(VIEWER_EMAIL);
    await page.getByLabel(/^Name/).fill("Vera Viewer");
    await page.getByLabel("Password", { exact: true }).fill(VIEWER_PASSWORD);
    await page.getByLabel(/^Viewers/).check();
    await page.getByRole("button", { name: "Create user" }).click();
    await visible(page.getByText(`Created ${VIEWER_EMAIL}.`));
    await screen("users");

    await page.goto("/audit");
    await visible(page.locator(".audit-action", { hasText: "Server created" }).first());
    await screen("audit");

    await page.goto("/");
    await visible(page.locator(".server-chart"));
    expect(await page.locator("rect.bar-sent").count()).toBeGreaterThan(0);
    await screen("overview");
    await page.getByText("30 days", { exact: true }).click();
    await visible(page.locator('svg[aria-label*="in the last 30 days"]'));

    await page.goto("/account");
    await screen("account");
  });

  it("has a new user choose their own password, shows them the settings with no edit controls, and lets them change it", async () => {
    await page.getByRole("button", { name: "Sign out" }).click();
    await visible(page.getByText("You are signed out."));
    // The admin chose their password: it works once, then they choose their own.
    await page.getByLabel("Email").fill(VIEWER_EMAIL);
    await page.getByLabel("Password").fill(VIEWER_PASSWORD);
    await page.getByRole("button", { name: "Sign in" }).click();
    await visible(page.getByRole("heading", { level: 1, name: "Choose your password" }));
    await screen("choose-password");
    await page.getByLabel("New password", { exact: true }).fill(VIEWER_OWN_PASSWORD);
    await page.getByLabel("New password again").fill(VIEWER_OWN_PASSWORD);
    await page.getByRole("button", { name: "Save and continue" }).click();
    await visible(page.getByRole("button", { name: "Sign out" }));

    await page.goto("/servers");
    await visible(page.getByRole("link", { name: "Relay", exact: true }));
    for (const name of ["New server", "Copy", "Make default", "Delete"]) {
      expect(await page.getByRole("button", { name: new RegExp(`^${name}`) }).count(), name).toBe(0);
      expect(await page.getByRole("link", { name: new RegExp(`^${name}`) }).count(), name).toBe(0);
    }
    await screen("servers-readonly");

    await openServer("Gmail");
    await visible(page.getByText("changing them needs the “Edit email servers” permission"));
    expect(await page.locator("main input, main select, main textarea").count()).toBe(0);
    for (const name of [/^Save/, /^Replace/, /^Clear/, /^Enter/, /^Disconnect/, /Authorize/, /Check connection/, /Send test/]) {
      expect(await page.getByRole("button", { name }).count(), String(name)).toBe(0);
    }
    await visible(page.locator('[data-setting="clientSecret"]').getByText("Set", { exact: true }));
    await page.getByRole("button", { name: "Copy Client ID" }).click();
    expect(await clipboard()).toBe("mailroom-e2e.apps.example");
    await screen("server-readonly");

    // Their own password: changing it signs them out.
    await page.goto("/account");
    await page.getByLabel("Current password").fill(VIEWER_OWN_PASSWORD);
    await page.getByLabel("New password", { exact: true }).fill(VIEWER_NEW_PASSWORD);
    await page.getByLabel("New password again").fill(VIEWER_NEW_PASSWORD);
    await page.getByRole("button", { name: "Change password" }).click();
    await visible(page.getByText("Your password is changed: sign in with the new one."));
    await signIn(VIEWER_EMAIL, VIEWER_NEW_PASSWORD);
  });

  it("never put a secret in the page, and the page never broke its Content-Security-Policy", () => {
    expect(html.length).toBeGreaterThan(10);
    for (const secret of SECRETS) {
      for (const snapshot of html) expect(snapshot).not.toContain(secret);
    }
    expect(consoleErrors).toEqual([]);
  });
});
