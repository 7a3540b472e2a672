/**
 * The Alerts page in Chromium against a real Mailroom process: add a webhook channel (its
 * signing secret shown once), send a test and read its result, add an email channel on the
 * only delivering server and read the warning, change a threshold.
 */
import path from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type Receiver, startReceiver } from "../events/alert-receiver.js";
import { browserMissing, checkScreen, launchBrowser, newContext, SCREENSHOTS, visible, watchConsole } from "./browser.js";
import { ADMIN_EMAIL, ADMIN_PASSWORD, type E2eMailroom, startMailroom } from "./mailroom.js";

const missing = browserMissing();

describe.skipIf(missing !== null)("the Alerts page in Chromium", { timeout: 120_000 }, () => {
  let mailroom: E2eMailroom;
  let receiver: Receiver;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let consoleErrors: string[];

  beforeAll(async () => {
    receiver = await startReceiver();
    mailroom = await startMailroom({ MAILROOM_ALLOWED_ENDPOINTS: receiver.origin });
    const login = await fetch(`${mailroom.url}/api/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: ADMIN_EMAIL, password: ADMIN_PASSWORD }),
    });
    const cookie = (login.headers.get("set-cookie") ?? "").split(";")[0];
    const { csrfToken } = (await login.json()) as { csrfToken: string };
    const res = await fetch(`${mailroom.url}/api/email-servers`, {
      method: "POST",
      headers: { cookie, "x-csrf-token": csrfToken, "content-type": "application/json" },
      body: JSON.stringify({
        name: "Relay",
        driver: "smtp",
        fromAddress: "app@example.com",
        settings: { host: "127.0.0.1", port: 2 },
      }),
    });
    expect(res.status).toBe(201);
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

  afterEach(async (ctx) => {
    if (ctx.task.result?.state !== "fail" || !page) return;
    const name = ctx.task.name.replace(/[^a-z0-9]+/gi, "-").slice(0, 60);
    await page.screenshot({ path: path.join(SCREENSHOTS, `FAILED-alerts-${name}.png`), fullPage: true }).catch(() => {});
  });

  afterAll(async () => {
    await context?.close();
    await browser?.close();
    await mailroom?.stop();
    await receiver?.close();
  });

  it("adds a webhook, shows its secret once, sends a test and shows what happened", async () => {
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Alerts" }).click();
    await visible(page.getByRole("heading", { level: 1, name: "Alerts" }));
    await visible(page.getByText("No channel yet"));
    await visible(page.getByText("No incident yet"));

    await page.getByRole("button", { name: "New channel" }).click();
    const form = page.getByRole("form", { name: "New alert channel" });
    await form.getByLabel("Name").fill("Ops webhook");
    await form.getByLabel("URL").fill("https://169.254.169.254/latest");
    await form.getByRole("button", { name: "Add channel" }).click();
    await visible(form.getByText("never posts alerts there").first());
    await form.getByLabel("URL").fill(receiver.url("/mailroom"));
    await form.getByRole("button", { name: "Add channel" }).click();
    await visible(page.getByText("Copy the signing secret of “Ops webhook” now"));
    expect(await page.locator("#signing-secret").textContent()).toMatch(/^whsec_/);
    await checkScreen(page, "alerts-webhook-added");

    await page.getByRole("button", { name: "Send test to Ops webhook" }).click();
    await visible(page.getByText("Test alert delivered (HTTP 200"));
    expect(receiver.received).toHaveLength(1);

    receiver.answer(410, "no_service");
    await page.getByRole("button", { name: "Send test to Ops webhook" }).click();
    await visible(page.getByText(/Not delivered \(HTTP 410/));
    await visible(page.getByText(/removed at the receiver/).first());
    receiver.answer(200);
  });

  it("warns that an email channel on the only server cannot carry alerts about it; saves a threshold", async () => {
    await page.getByRole("button", { name: "New channel" }).click();
    const form = page.getByRole("form", { name: "New alert channel" });
    await form.getByLabel("Type").selectOption("email");
    await form.getByLabel("Name").fill("Ops mail");
    await form.getByLabel("Send through").selectOption({ label: "Relay" });
    await form.getByLabel("Recipients").fill("ops@example.com, oncall@example.com");
    await form.getByRole("button", { name: "Add channel" }).click();
    await visible(page.getByText("This is your only server: an alert about 'Relay' cannot be sent through it."));

    const thresholds = page.getByRole("form", { name: "Alert thresholds" });
    await thresholds.getByLabel("Held messages").fill("");
    await thresholds.getByRole("button", { name: "Save thresholds" }).click();
    await visible(page.getByText("Saved: the next evaluation uses these thresholds."));
    await checkScreen(page, "alerts-channels");
    expect(consoleErrors).toEqual([]);
  });
});
