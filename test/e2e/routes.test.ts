/**
 * The Routes page in Chromium against a real Mailroom process: add a rule with a fallback,
 * see a refused rule explained, and ask which route a message would take.
 */
import path from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { browserMissing, checkScreen, launchBrowser, newContext, SCREENSHOTS, visible, watchConsole } from "./browser.js";
import { ADMIN_EMAIL, ADMIN_PASSWORD, type E2eMailroom, startMailroom } from "./mailroom.js";

const missing = browserMissing();

describe.skipIf(missing !== null)("the Routes page in Chromium", { timeout: 120_000 }, () => {
  let mailroom: E2eMailroom;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let consoleErrors: string[];

  beforeAll(async () => {
    mailroom = await startMailroom();
    const login = await fetch(`${mailroom.url}/api/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: ADMIN_EMAIL, password: ADMIN_PASSWORD }),
    });
    const cookie = (login.headers.get("set-cookie") ?? "").split(";")[0];
    const { csrfToken } = (await login.json()) as { csrfToken: string };
    for (const name of ["Primary", "Backup"]) {
      const res = await fetch(`${mailroom.url}/api/email-servers`, {
        method: "POST",
        headers: { cookie, "x-csrf-token": csrfToken, "content-type": "application/json" },
        body: JSON.stringify({
          name,
          driver: "capture",
          fromAddress: "app@example.com",
          settings: { allowedFromAddresses: ["*@example.com"] },
        }),
      });
      expect(res.status).toBe(201);
    }
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
    await page.screenshot({ path: path.join(SCREENSHOTS, `FAILED-routes-${name}.png`), fullPage: true }).catch(() => {});
  });

  afterAll(async () => {
    await context?.close();
    await browser?.close();
    await mailroom?.stop();
  });

  it("adds a route with a primary and a fallback, and explains a refused one", async () => {
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Routes" }).click();
    await visible(page.getByRole("heading", { level: 1, name: "Routes" }));
    await visible(page.getByText("No routes yet"));
    await checkScreen(page, "routes-empty");

    // A rule without a condition is refused, and the message says what to add.
    await page.getByRole("button", { name: "New route" }).click();
    const form = page.getByRole("form", { name: "New route" });
    await form.getByLabel("Name").fill("newsletters");
    await form.getByRole("button", { name: "Create route" }).click();
    await visible(form.getByRole("alert").filter({ hasText: "at least one condition" }));

    await form.getByLabel("Tag").fill("newsletter");
    await form.getByLabel("Primary", { exact: true }).selectOption({ label: "Primary" });
    await form.getByRole("button", { name: "Add a fallback" }).click();
    await form.getByLabel("Fallback 1", { exact: true }).selectOption({ label: "Backup" });
    await form.getByRole("button", { name: "Create route" }).click();
    await visible(page.getByText("Created the route newsletters."));
    const row = page.getByRole("row", { name: /newsletters/ });
    await visible(row.getByText("tag newsletter"));
    expect(await row.getByRole("listitem").allInnerTexts()).toEqual(["Primary (primary)", "Backup (fallback)"]);
  });

  it("says which route a message would take, and that a From no server may send is refused", async () => {
    const tester = page.getByRole("form", { name: "Route tester" });
    await tester.getByLabel("From").fill("news@example.com");
    await tester.getByLabel("Tag").fill("newsletter");
    await tester.getByRole("button", { name: "Find the route" }).click();
    await visible(page.getByRole("status").filter({ hasText: "Route 'newsletters': sent through 'Primary'." }));
    await visible(page.getByRole("row", { name: /Primary \(would send\)/ }));
    await checkScreen(page, "routes");

    await tester.getByLabel("From").fill("ceo@elsewhere.org");
    await tester.getByRole("button", { name: "Find the route" }).click();
    await visible(page.getByRole("status").filter({ hasText: "no server may send as ceo@elsewhere.org" }));
    expect(consoleErrors).toEqual([]);
  });
});
