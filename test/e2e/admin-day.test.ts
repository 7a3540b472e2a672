/**
 * Issue 12 in a real browser: the friction found by walking through the admin UI as a new
 * user, at 1280 and 390 px and by keyboard. Mailroom runs with a public URL on a host name
 * (http://mailroom.example.test:<port>, which Chromium maps to 127.0.0.1), as an install
 * behind a name would: redirect URIs and ready-to-run examples must use it.
 */
import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type MockIssuer, startIssuer } from "../oauth/issuer.js";
import { type SmtpPeer, startSmtpPeer } from "../peers/smtp-peer.js";
import { browserMissing, checkScreen, gone, launchBrowser, NARROW, SCREENSHOTS, visible, WIDE, watchConsole } from "./browser.js";
import { ADMIN_EMAIL, ADMIN_PASSWORD, type E2eMailroom, freePort, startMailroom } from "./mailroom.js";

const missing = browserMissing();
const PUBLIC_HOST = "mailroom.example.test";
const SCRIPT_ATTACHMENT = '<html><body><script>localStorage.setItem("owned", "yes")</script>owned</body></html>';

/** WCAG contrast ratio of two CSS rgb() colours. */
function contrast(a: string, b: string): number {
  const luminance = (css: string) => {
    const [r, g, bl] = (css.match(/\d+(\.\d+)?/g) ?? []).slice(0, 3).map((v) => {
      const c = Number(v) / 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * bl;
  };
  const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p);
  return (x + 0.05) / (y + 0.05);
}

describe.skipIf(missing !== null)("the admin's day in Chromium (issue 12)", { timeout: 120_000 }, () => {
  let mailroom: E2eMailroom;
  let publicUrl: string;
  let smtp: SmtpPeer;
  let issuer: MockIssuer;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let consoleErrors: string[];
  let token = "";

  async function signIn(): Promise<void> {
    await page.goto("/");
    await page.getByLabel("Email").fill(ADMIN_EMAIL);
    await page.getByLabel("Password").fill(ADMIN_PASSWORD);
    await page.getByRole("button", { name: "Sign in" }).click();
    await visible(page.getByRole("button", { name: "Sign out" }));
  }

  /** Queues a message with the API token and waits until it is sent or failed. */
  async function send(message: Record<string, unknown>): Promise<{ id: string; status: string; providerMessageId: string }> {
    const queued = await mailroom.api("POST", "/api/messages", token, message);
    expect(queued.status, JSON.stringify(queued.json)).toBe(202);
    const { id } = queued.json as { id: string };
    let last = { id, status: "queued", providerMessageId: "" };
    await expect
      .poll(
        async () => {
          last = (await mailroom.api("GET", `/api/messages/${id}`, token)).json as typeof last;
          return last.status === "sent" || last.status === "failed";
        },
        { timeout: 15_000 },
      )
      .toBe(true);
    return last;
  }

  function main() {
    return page.getByRole("navigation", { name: "Main" });
  }

  beforeAll(async () => {
    smtp = await startSmtpPeer({ security: "none" });
    issuer = await startIssuer("google");
    const port = await freePort();
    publicUrl = `http://${PUBLIC_HOST}:${port}`;
    mailroom = await startMailroom({ ...issuer.env, MAILROOM_PORT: String(port), MAILROOM_PUBLIC_URL: publicUrl });
    browser = await launchBrowser([
      `--host-resolver-rules=MAP ${PUBLIC_HOST} 127.0.0.1`,
      // The clipboard wants a secure context; a plain-http host name is not one unless said.
      `--unsafely-treat-insecure-origin-as-secure=${publicUrl}`,
    ]);
    context = await browser.newContext({ baseURL: publicUrl, viewport: WIDE, acceptDownloads: true });
    await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: publicUrl });
    page = await context.newPage();
    consoleErrors = watchConsole(page);
  }, 60_000);

  afterEach(async (ctx) => {
    if (ctx.task.result?.state !== "fail" || !page) return;
    const name = ctx.task.name.replace(/[^a-z0-9]+/gi, "-").slice(0, 60);
    await page.screenshot({ path: path.join(SCREENSHOTS, `FAILED-day-${name}.png`), fullPage: true }).catch(() => {});
  });

  afterAll(async () => {
    await context?.close();
    await browser?.close();
    await mailroom?.stop();
    await smtp?.close();
    await issuer?.stop();
  });

  it("1. a first visit is not told its session ended, and a later error is not shown under an old notice", async () => {
    await page.goto("/");
    await visible(page.getByRole("heading", { name: "Sign in" }));
    expect(await page.getByText("Your session ended").count()).toBe(0);
    expect(await page.locator(".alert").count()).toBe(0);

    await signIn();
    await page.getByRole("button", { name: "Sign out" }).click();
    await visible(page.getByText("You are signed out."));
    await page.getByLabel("Email").fill(ADMIN_EMAIL);
    await page.getByLabel("Password").fill("not the password");
    await page.getByRole("button", { name: "Sign in" }).click();
    await visible(page.getByText("do not match an active account"));
    expect(await page.getByText("You are signed out.").count()).toBe(0);

    // A session that does end still says so.
    await signIn();
    // The overview's own requests first (the chart, storage and retention): a 401 to one still in
    // flight would end the session before the click this checks.
    await visible(page.getByRole("heading", { name: "Storage and retention" }));
    await visible(page.getByRole("button", { name: "Refresh", disabled: false }));
    await page.context().clearCookies();
    await page.getByRole("button", { name: "Refresh" }).click();
    await visible(page.getByText("Your session ended: sign in again."));
    await signIn();
  });

  it("3. API tokens have their own navigation entry; a new token comes with a curl that sends a first message", async () => {
    await page.goto("/users");
    await visible(page.getByRole("heading", { level: 1, name: "Users" }));
    expect(
      await page.getByRole("navigation", { name: "Users and groups" }).getByRole("link", { name: "API tokens" }).count(),
    ).toBe(0);
    await main().getByRole("link", { name: "API tokens" }).click();
    await visible(page.getByRole("heading", { level: 1, name: "API tokens" }));
    expect(await main().getByRole("link", { name: "API tokens" }).getAttribute("aria-current")).toBe("page");

    await page.getByRole("button", { name: "New token" }).click();
    await page.getByLabel(/^Name/).fill("Shop");
    // Each permission says what it allows.
    await visible(page.getByText("Queue messages (POST /api/messages) and retry failed ones."));
    await page.getByLabel(/View messages/).check();
    await page.getByRole("button", { name: "Create token" }).click();
    await visible(page.getByRole("heading", { name: "Send a first message with “Shop”" }));
    token = (await page.locator("#new-token").textContent())?.trim() ?? "";
    const curl = (await page.locator("#curl-example").textContent()) ?? "";
    expect(curl).toContain(`${publicUrl}/api/messages`);
    expect(curl).toContain(`Authorization: Bearer ${token}`);
    expect(curl).toContain(ADMIN_EMAIL);
    await page.getByRole("button", { name: "Copy the curl command" }).click();
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(curl);
    expect(await page.getByRole("link", { name: new RegExp(`${publicUrl}/api/docs`) }).getAttribute("href")).toBe(
      `${publicUrl}/api/docs`,
    );
    const smtpExample = (await page.locator("#smtp-example").textContent()) ?? "";
    expect(smtpExample).toContain(`token:${token}`);
    await checkScreen(page, "tokens-first-message");

    // The command runs as copied; --resolve maps the public host to this machine, as Chromium's rule does.
    const port = new URL(publicUrl).port;
    const { stdout } = await promisify(execFile)("bash", [
      "-c",
      curl.replace(/^curl /, `curl -s --resolve ${PUBLIC_HOST}:${port}:127.0.0.1 `),
    ]);
    const answer = JSON.parse(stdout) as { id: string; status: string };
    expect(answer.status).toBe("queued");
    await expect
      .poll(async () => ((await mailroom.api("GET", `/api/messages/${answer.id}`, token)).json as { status: string }).status)
      .toBe("sent");

    // So does the SMTP example: the message arrives through SMTP submission.
    const smtpPort = /:(\d+)'/.exec(smtpExample)?.[1] as string;
    await promisify(execFile)("bash", [
      "-c",
      smtpExample.replace(/^curl /, `curl -s --resolve ${PUBLIC_HOST}:${smtpPort}:127.0.0.1 `),
    ]);
    await expect
      .poll(async () => {
        const list = (await mailroom.api("GET", "/api/messages?q=Hello%20from%20Mailroom%20over%20SMTP", token)).json as {
          items: { source: { kind: string } }[];
        };
        return list.items.map((m) => m.source.kind);
      })
      .toEqual(["smtp"]);
  });

  it("6 and 11. a test email keeps focus on its button, opens the captured message, and is in the delivery log as a test", async () => {
    await page.goto("/servers/new");
    // The session and the form both loaded: a choice made before would be reset to the first driver.
    await visible(page.getByRole("button", { name: "Sign out" }));
    await visible(page.getByRole("heading", { name: "General" }));
    await page.getByLabel("Driver").selectOption({ label: "Capture" });
    await page.getByLabel(/^Name/).fill("Dev inbox");
    await page.getByLabel(/^From address/).fill("app@example.com");
    await page.getByRole("button", { name: "Create server" }).click();
    await visible(page.getByText("Created “Dev inbox”."));

    // By keyboard: focus stays on the button while it sends and after.
    const sendButton = page.getByRole("button", { name: "Send test email" });
    await sendButton.focus();
    await page.keyboard.press("Enter");
    await visible(page.getByText(`The test email was sent to ${ADMIN_EMAIL}`));
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe("Send test email");

    const logLink = (await page.getByRole("link", { name: "See it in the delivery log" }).getAttribute("href")) ?? "";
    expect(logLink).toMatch(/^\/messages\/.+/);
    await page.getByRole("link", { name: "Open it in Captured mail" }).click();
    await visible(page.getByRole("heading", { level: 1, name: 'Mailroom test message from "Dev inbox"' }));
    expect(page.url()).toMatch(/\/capture\/[^/]+\/[^/]+$/);
    await visible(page.getByText("If you can read it, the server works."));
    await page.goto(logLink);
    await visible(page.getByRole("heading", { level: 1, name: 'Mailroom test message from "Dev inbox"' }));
    await visible(page.locator(".status-line .badge", { hasText: "Test" }));
    await visible(page.getByText("it is never retried"));
    await page.goto("/messages");
    await visible(page.getByRole("row", { name: /Mailroom test message from "Dev inbox".*Test/ }));
    await checkScreen(page, "messages-with-test");
  });

  it("11. on a phone the test panel is one tap away, Escape closes the menu, and the selected period's focus ring shows", async () => {
    await page.goto("/servers");
    await page.getByRole("link", { name: "Dev inbox", exact: true }).click();
    await page.setViewportSize(NARROW);
    const jump = page.getByRole("button", { name: "Jump to Test this server" });
    await visible(jump);
    const testHeading = page.getByRole("heading", { name: "Test", exact: true });
    expect((await testHeading.boundingBox())?.y ?? 0).toBeGreaterThan(NARROW.height);
    await jump.click();
    await expect.poll(async () => (await testHeading.boundingBox())?.y ?? 9999).toBeLessThan(NARROW.height);
    expect(await page.evaluate(() => document.activeElement?.id)).toBe("test-heading");
    await checkScreen(page, "server-phone-jump");

    await page.setViewportSize(NARROW);
    const menu = page.getByRole("button", { name: "Menu" });
    await menu.click();
    await visible(main().getByRole("link", { name: "Audit log" }));
    await page.keyboard.press("Escape");
    expect(await menu.getAttribute("aria-expanded")).toBe("false");
    expect(await main().getByRole("link", { name: "Audit log" }).isVisible()).toBe(false);
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe("Menu");
    await page.setViewportSize(WIDE);

    await page.goto("/");
    const selected = page.locator(".segmented label.is-selected");
    await visible(selected);
    await page.getByRole("radio", { name: "24 hours" }).focus();
    const ring = await selected.evaluate((label) => {
      const style = getComputedStyle(label);
      return { outline: style.outlineColor, width: style.outlineWidth, background: style.backgroundColor };
    });
    expect(ring.width).not.toBe("0px");
    expect(contrast(ring.outline, ring.background)).toBeGreaterThanOrEqual(3);
  });

  it("7. Captured mail is a dev inbox: live, searchable, decoded, downloadable, safe, releasable and deletable", async () => {
    const first = await send({
      server: "Dev inbox",
      to: "Zoë <zoe@example.com>",
      subject: "Grüße aus Köln",
      text: "Hallo Zoë",
      html: '<h1 id="hello">Hallo</h1><img src="https://tracker.example/pixel.gif" alt="">',
      attachments: [
        { filename: "evil.html", contentType: "text/html", content: Buffer.from(SCRIPT_ATTACHMENT).toString("base64") },
        { filename: "notes.txt", contentType: "text/plain", content: Buffer.from("notes").toString("base64") },
      ],
    });
    await page.goto("/capture");
    await page.getByLabel("Capture server").selectOption({ label: "Dev inbox" });
    await visible(page.getByRole("link", { name: "Grüße aus Köln" }));

    // Live: mail sent while the list is open shows up without a reload.
    await send({ server: "Dev inbox", to: "dave@example.com", subject: "Password reset", text: "Reset it." });
    await visible(page.getByRole("link", { name: "Password reset" }));

    await page.getByLabel("Search").fill("köln");
    await visible(page.getByText("1 message matches “köln”"));
    await gone(page.getByRole("link", { name: "Password reset" }));
    await checkScreen(page, "capture-inbox");
    await page.getByRole("link", { name: "Grüße aus Köln" }).click();
    await visible(page.getByRole("heading", { level: 1, name: "Grüße aus Köln" }));
    const capturedUrl = page.url();

    // The HTML as sent, its remote image blocked and said so; its source; the text.
    await visible(page.getByText("1 remote image is not shown"));
    await page.frameLocator("iframe.html-preview").locator("#hello").waitFor();
    await page.getByRole("tab", { name: "HTML source" }).click();
    await visible(page.getByText('<h1 id="hello">Hallo</h1>'));
    await page.getByRole("tab", { name: "Text" }).click();
    await visible(page.getByText("Hallo Zoë"));
    await page.getByRole("tab", { name: /Headers/ }).click();
    const subjectRow = page.getByRole("row", { name: /^subject/i });
    expect(await subjectRow.getByRole("cell").textContent()).toBe("Grüße aus Köln");

    // Downloads: the .eml, and an HTML attachment that is saved, never run on Mailroom's origin.
    const eml = page.waitForEvent("download");
    await page.getByRole("link", { name: "Download .eml" }).click();
    expect((await eml).suggestedFilename()).toBe(`${first.providerMessageId}.eml`);
    await page.getByRole("tab", { name: /Attachments/ }).click();
    const attachment = page.waitForEvent("download");
    await page.getByRole("link", { name: "evil.html (download)" }).click();
    expect((await attachment).suggestedFilename()).toBe("evil.html");
    const attachmentUrl = await page.getByRole("link", { name: "evil.html (download)" }).getAttribute("href");
    // Opened directly (a link in another mail, say), it still downloads instead of rendering.
    const direct = await context.newPage();
    const directDownload = direct.waitForEvent("download");
    await direct.goto(`${publicUrl}${attachmentUrl}`).catch(() => {});
    expect((await directDownload).suggestedFilename()).toBe("evil.html");
    await direct.close();
    expect(await page.evaluate(() => localStorage.getItem("owned"))).toBeNull();
    await page.getByRole("tab", { name: "HTML", exact: true }).click();
    await checkScreen(page, "captured-message-inbox");

    // Release through a real server (an SMTP peer), to another address.
    await page.goto("/servers/new");
    await page.getByLabel(/^Name/).fill("Relay");
    await page.getByLabel(/^From address/).fill("relay@example.com");
    await page.locator("#setting-host").fill("127.0.0.1");
    await page.locator("#setting-port").fill(String(smtp.port));
    await page.locator("#setting-security").selectOption("none");
    await page.getByRole("button", { name: "Create server" }).click();
    await visible(page.getByText("Created “Relay”."));
    await page.goto(capturedUrl);
    await visible(page.getByRole("heading", { name: "Release" }));
    // A text box stands in until the servers are loaded: wait for the list.
    await visible(page.locator("select#release-server"));
    await page.getByLabel("Send through").selectOption({ label: "Relay" });
    expect(await page.getByLabel("To", { exact: true }).inputValue()).toBe("zoe@example.com");
    await page.getByLabel("To", { exact: true }).fill("qa@example.com");
    await page.getByRole("button", { name: "Release" }).click();
    await visible(page.getByRole("link", { name: "follow it in the delivery log" }));
    const [received] = await smtp.waitForMessages(1);
    expect(received.envelope.to).toEqual(["qa@example.com"]);
    expect(received.subject).toBe("Grüße aus Köln");

    // Delete this one, then everything.
    await page.getByRole("button", { name: "Delete", exact: true }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Delete" }).click();
    await visible(page.getByRole("link", { name: "Password reset" }));
    expect(await page.getByRole("link", { name: "Grüße aus Köln" }).count()).toBe(0);
    await page.getByRole("button", { name: "Delete all" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Delete all" }).click();
    await visible(page.getByText(/Deleted \d+ captured messages?\./));
    await visible(page.getByText("Nothing captured yet."));
  });

  it("9. a retry warns before resending a refused message, counts 2 attempts, and its banner clears", async () => {
    smtp.setFaults({ rejectRecipients: ["nobody@example.com"] });
    const failed = await send({ server: "Relay", to: "nobody@example.com", subject: "Report for nobody", text: "x" });
    expect(failed.status).toBe("failed");
    await page.goto(`/messages/${failed.id}`);
    await visible(page.getByRole("heading", { name: "Attempts" }));
    await visible(page.getByText("1 of 6"));
    const response = (await page.locator(".attempts .response code").textContent()) ?? "";
    expect(response).toMatch(/550/);
    expect(response).not.toMatch(/550 550/);
    // The error code wraps as a word, never inside it.
    const code = page.locator(".attempts .status-detail").first();
    expect(await code.evaluate((el) => el.getClientRects().length)).toBe(1);
    await checkScreen(page, "message-refused");

    // A refusal for good asks first; "Don't retry" leaves it.
    await page.getByRole("button", { name: "Retry" }).click();
    await visible(page.getByRole("dialog", { name: "Retry a message that was refused?" }));
    await page.getByRole("button", { name: "Don’t retry" }).click();
    await gone(page.getByRole("dialog"));
    smtp.setFaults({});
    await page.getByRole("button", { name: "Retry" }).click();
    await page.getByRole("button", { name: "Retry anyway" }).click();
    await visible(page.locator(".status-line .pill", { hasText: "Sent" }), 20_000);
    await visible(page.getByText("2 attempts"));
    expect(await page.getByText("Queued again").count()).toBe(0);

    // Sent messages show how many attempts they took, not "1 of 6".
    await page.goto("/messages?status=sent");
    await visible(page.getByRole("link", { name: "Report for nobody" }));
    expect(await page.getByText(/ of 6$/).count()).toBe(0);
  });

  it("10. the delivery log searches subject and recipient; the audit log names things and filters by action, user and date", async () => {
    await page.goto("/messages");
    await page.getByLabel("Search").fill("report for");
    await visible(page.getByText("1 message", { exact: true }));
    await visible(page.getByRole("link", { name: "Report for nobody" }));
    await page.getByLabel("Search").fill("qa@example");
    await visible(page.getByRole("link", { name: "Grüße aus Köln" }));
    await checkScreen(page, "messages-search");

    await page.goto("/audit");
    await visible(page.getByRole("link", { name: "Relay" }).first());
    await page.getByLabel("Action").selectOption({ label: "Message retried" });
    await visible(page.getByText("1 entry"));
    await visible(page.getByRole("link", { name: "Report for nobody" }));
    await page.getByLabel("Action").selectOption({ label: "Server created" });
    await visible(page.getByRole("cell", { name: /Server created server Dev inbox/ }));
    await page.getByLabel("Who").selectOption({ label: ADMIN_EMAIL });
    await visible(page.getByRole("cell", { name: /Server created server Relay/ }));
    await checkScreen(page, "audit-filtered");
    await page.getByLabel("From").fill("2099-01-01T00:00");
    await visible(page.getByText("No entries."));
    await page.getByRole("button", { name: "Clear filters" }).click();
    await visible(page.getByRole("link", { name: "Relay" }).first());
  });

  it("4. Gmail: redirect URI and setup before the first save, an https warning, labels for what is missing, the 7-day warning", async () => {
    await page.goto("/servers/new?driver=gmail");
    await visible(page.getByRole("heading", { name: "Connect Google Gmail" }));
    expect(await page.locator("#redirect-uri").textContent()).toBe(`${publicUrl}/oauth/google/callback`);
    await visible(page.getByText("accepts a plain http:// redirect URI only for localhost"));
    expect(await page.getByRole("link", { name: /Google Cloud console: OAuth clients/ }).getAttribute("href")).toBe(
      "https://console.cloud.google.com/auth/clients",
    );
    expect(
      await page
        .getByRole("link", { name: /Google Auth Platform: Audience/ })
        .first()
        .getAttribute("href"),
    ).toBe("https://console.cloud.google.com/auth/audience");
    await visible(page.getByText(/Google ends every grant after/));
    await visible(page.getByText("docs/oauth.md"));
    await checkScreen(page, "server-gmail-new");

    await page.getByLabel(/^Name/).fill("Gmail");
    await page.getByLabel(/^From address/).fill("sender@example.com");
    await page.getByRole("button", { name: "Create server" }).click();
    // The saved server's page, not the new-server form (which names what is missing too): typing
    // into the form before it is replaced would be lost.
    await visible(page.getByText("Created “Gmail”."));
    await visible(page.getByText("Missing: Client ID, Client secret."));

    await page.locator("#setting-clientId").fill("mailroom-e2e.apps.example");
    await page.locator("#setting-clientSecret").fill("client-secret-day-1234");
    await page.getByRole("button", { name: "Save", exact: true }).click();
    await visible(page.getByText("Saved “Gmail”."));
    // An External app in Testing: Google says the grant ends in 7 days.
    issuer.grantLifetimeSeconds = 7 * 24 * 3600;
    // Enabled once the saved client (ID and secret) is on the page; a timeout prints the reason shown.
    await visible(page.getByRole("button", { name: "Authorize account", disabled: false }), 15_000);
    await page.getByRole("button", { name: "Authorize account" }).click();
    await visible(page.getByText("The account is authorized: this server can send now."), 15_000);
    await visible(page.getByText("This grant ends 7 days after it was given"));
    await checkScreen(page, "server-gmail-testing-grant");
  });

  it("kept the page free of script errors, and the preview ran no script", () => {
    // The remote image the preview refused is a CSP report, which is the point.
    expect(consoleErrors.filter((e) => !e.includes("tracker.example"))).toEqual([]);
  });
});
