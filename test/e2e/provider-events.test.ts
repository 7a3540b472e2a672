/**
 * Bounces in the admin UI, in Chromium against a real Mailroom process: setting up a source on
 * the server page (its credentials shown once), a bounce on the message's page, the rates on
 * the overview, and the Suppressions page (list, search, add, remove). Each screen passes axe.
 */
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { browserMissing, checkScreen, gone, launchBrowser, newContext, visible, watchConsole } from "./browser.js";
import { ADMIN_EMAIL, ADMIN_PASSWORD, type E2eMailroom, startMailroom } from "./mailroom.js";

const missing = browserMissing();
if (missing) console.warn(`Skipping the browser tests: ${missing}.`);

describe.skipIf(missing !== null)("bounces and the suppression list in Chromium", { timeout: 90_000 }, () => {
  let mailroom: E2eMailroom;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let consoleErrors: string[];
  let password = "";
  let captureId = "";

  beforeAll(async () => {
    mailroom = await startMailroom();
    browser = await launchBrowser();
    context = await newContext(browser, mailroom.url);
    page = await context.newPage();
    consoleErrors = watchConsole(page);
    await page.goto("/");
    await page.getByLabel("Email").fill(ADMIN_EMAIL);
    await page.getByLabel("Password").fill(ADMIN_PASSWORD);
    await page.getByRole("button", { name: "Sign in" }).click();
    await visible(page.getByRole("button", { name: "Sign out" }));
  }, 60_000);

  afterAll(async () => {
    await context?.close();
    await browser?.close();
    await mailroom?.stop();
  });

  it("sets up Postmark on the server page: the URL with its credentials is shown once", async () => {
    await page.goto("/servers");
    await page.getByRole("link", { name: "Capture", exact: true }).click();
    await visible(page.getByRole("heading", { name: "Bounces and deliveries" }));
    captureId = page.url().split("/servers/")[1];
    await page.getByRole("button", { name: "Set up Postmark" }).click();
    const shown = page.locator(".alert code").filter({ hasText: "mailroom:" });
    await visible(shown);
    const url = new URL(((await shown.textContent()) ?? "").trim());
    password = decodeURIComponent(url.password);
    expect(url.pathname).toBe(`/api/provider-events/${captureId}/postmark`);
    await checkScreen(page, "server-bounces");
    await page.reload();
    await visible(page.getByRole("heading", { name: "Bounces and deliveries" }));
    expect(await page.content()).not.toContain(password);
  });

  it("shows a hard bounce on the message's page, the rates on the overview, and the address on Suppressions", async () => {
    const login = await fetch(`${mailroom.url}/api/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: ADMIN_EMAIL, password: ADMIN_PASSWORD }),
    });
    const cookie = login.headers.get("set-cookie")?.split(";")[0] ?? "";
    const { csrfToken } = (await login.json()) as { csrfToken: string };
    const session = { cookie, "x-csrf-token": csrfToken, "content-type": "application/json" };
    const queued = await fetch(`${mailroom.url}/api/messages`, {
      method: "POST",
      headers: session,
      body: JSON.stringify({ to: "gone@example.org", subject: "Will bounce", text: "x" }),
    });
    const { id } = (await queued.json()) as { id: string };
    let providerId = "";
    await expect
      .poll(
        async () => {
          const m = (await (await fetch(`${mailroom.url}/api/messages/${id}`, { headers: session })).json()) as {
            status: string;
            providerMessageId: string | null;
          };
          providerId = m.providerMessageId ?? "";
          return m.status;
        },
        { timeout: 15_000 },
      )
      .toBe("sent");
    const bounce = await fetch(`${mailroom.url}/api/provider-events/${captureId}/postmark`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Basic ${Buffer.from(`mailroom:${password}`).toString("base64")}`,
      },
      body: JSON.stringify({
        RecordType: "Bounce",
        ID: 4242,
        Type: "HardBounce",
        MessageID: providerId,
        Email: "gone@example.org",
        Details: "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        BouncedAt: new Date().toISOString(),
      }),
    });
    expect(bounce.status).toBe(200);

    await page.goto(`/messages/${id}`);
    await visible(page.getByRole("heading", { name: "Provider reports" }));
    await visible(page.getByText("Hard bounce · Postmark"));
    await visible(page.getByText("550 5.1.1 The email account"));
    await checkScreen(page, "message-bounced");

    await page.goto("/");
    await visible(page.getByRole("heading", { name: "Bounces and complaints, last 30 days" }));
    await visible(page.getByText("1 (100.0 %)").first());

    await page.getByRole("link", { name: "Suppressions" }).first().click();
    await visible(page.getByRole("heading", { level: 1, name: "Suppressions" }));
    await visible(page.getByRole("rowheader", { name: "gone@example.org" }));
    await checkScreen(page, "suppressions");
  });

  it("adds an address by hand, searches, and removes it", async () => {
    await page.getByRole("button", { name: "Add an address" }).click();
    const address = page.getByRole("textbox", { name: "Address" });
    await address.fill("not an address");
    await page.getByRole("button", { name: "Add to the list" }).click();
    await visible(page.getByText("must be an email address").first());
    await address.fill("asked-to-stop@example.org");
    await page.getByLabel("Note").fill("Asked us to stop");
    await page.getByRole("button", { name: "Add to the list" }).click();
    await visible(page.getByText("asked-to-stop@example.org added"));
    await page.getByLabel("Search").fill("asked");
    await gone(page.getByRole("rowheader", { name: "gone@example.org" }));
    await page.getByRole("button", { name: "Remove asked-to-stop@example.org" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Remove from the list" }).click();
    await visible(page.getByText("mail to it is accepted again"));
    await visible(page.getByText("No address is suppressed with these filters."));
    expect(consoleErrors).toEqual([]);
  });
});
