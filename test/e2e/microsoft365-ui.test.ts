/**
 * Microsoft 365 in the admin UI, in a real browser (Debian's Chromium) against a real Mailroom
 * process and a real OAuth issuer dressed as Microsoft Entra (test/oauth/issuer.ts: the
 * tenant's /oauth2/v2.0 paths, ID tokens with a tenant id and the per-tenant issuer, rotated
 * refresh tokens, no revocation endpoint).
 */
import path from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type MockIssuer, startIssuer } from "../oauth/issuer.js";
import { browserMissing, checkScreen, launchBrowser, newContext, SCREENSHOTS, visible, watchConsole } from "./browser.js";
import { ADMIN_EMAIL, ADMIN_PASSWORD, type E2eMailroom, startMailroom } from "./mailroom.js";

const missing = browserMissing();
if (missing) console.warn(`Skipping the browser tests: ${missing}.`);

const CLIENT_ID = "0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9";
const CLIENT_SECRET = "entra-client-secret-Wp8-unique-6613";

describe.skipIf(missing !== null)("Microsoft 365 in the admin UI", { timeout: 90_000 }, () => {
  let mailroom: E2eMailroom;
  let issuer: MockIssuer;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let consoleErrors: string[];
  const html: string[] = [];

  beforeAll(async () => {
    issuer = await startIssuer("microsoft");
    mailroom = await startMailroom(issuer.env);
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

  afterEach(async (context) => {
    if (context.task.result?.state !== "fail" || !page) return;
    const name = context.task.name.replace(/[^a-z0-9]+/gi, "-").slice(0, 60);
    await page.screenshot({ path: path.join(SCREENSHOTS, `FAILED-${name}.png`), fullPage: true }).catch(() => {});
  });

  afterAll(async () => {
    await context?.close();
    await browser?.close();
    await mailroom?.stop();
    await issuer?.stop();
  });

  it("creates a Microsoft 365 server, authorizes its account through Entra, shows it, then disconnects", async () => {
    await page.goto("/servers/new?driver=microsoft365");
    await visible(page.getByRole("heading", { name: "Connect Microsoft 365" }));
    await visible(page.getByRole("heading", { name: "Register the app" }));
    await visible(page.getByRole("heading", { name: "Paste the tenant, client ID and secret" }));
    // Any work account unless the admin names a directory; the mock issuer serves that path.
    expect(await page.locator("#setting-tenant").inputValue()).toBe("organizations");
    await page.getByLabel(/^Name/).fill("Microsoft 365");
    await page.getByLabel(/^From address/).fill("sender@example.com");
    await page.locator("#setting-clientId").fill(CLIENT_ID);
    await page.locator("#setting-clientSecret").fill(CLIENT_SECRET);
    await page.getByRole("button", { name: "Create server" }).click();
    await visible(page.getByText("Created “Microsoft 365”."));
    await visible(page.getByText("Not authorized", { exact: true }).first());

    await page.getByRole("button", { name: "Copy the redirect URI" }).click();
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(`${mailroom.url}/oauth/microsoft/callback`);

    // To the issuer's /organizations/oauth2/v2.0/authorize and back through Mailroom's callback.
    await page.getByRole("button", { name: "Authorize account" }).click();
    await visible(page.getByText("The account is authorized: this server can send now."), 15_000);
    expect(new URL(page.url()).search).toBe("");
    await visible(page.locator(".pill", { hasText: "Ready" }));
    await visible(page.locator(".account-name", { hasText: "sender@example.com" }));
    await visible(page.getByText("https://outlook.office.com/SMTP.Send"));
    await visible(page.getByRole("button", { name: "Authorize again" }));
    const exchange = issuer.requests.find((r) => r.grantType === "authorization_code");
    expect(exchange).toMatchObject({ clientId: CLIENT_ID, codeVerifier: expect.any(String) });
    html.push(await page.content());
    await checkScreen(page, "server-microsoft365-authorized");

    // Microsoft's words for sending as another address.
    await page.getByLabel(/^From address/).fill("shared@example.com");
    await visible(page.getByText("is not the authorized account sender@example.com"));
    await visible(page.getByText("“Send As” addresses", { exact: false }));
    await page.getByRole("button", { name: "Discard changes" }).click();

    // Microsoft has no revocation endpoint: Mailroom forgets the tokens and says where to end the grant.
    await page.getByRole("button", { name: "Disconnect" }).click();
    await visible(page.getByRole("dialog", { name: /Disconnect sender@example.com/ }));
    await page.getByRole("dialog").getByRole("button", { name: "Disconnect" }).click();
    await visible(page.getByText("No account is authorized yet"));
    await visible(page.getByText(/Remove Mailroom's access at https:\/\/myapps\.microsoft\.com/));
    await visible(page.getByText("Not authorized", { exact: true }).first());
    expect(issuer.revocations).toBe(0);
    html.push(await page.content());
  });

  it("never put the client secret or a token in the page, and the page logged no error", () => {
    expect(html.length).toBe(2);
    for (const snapshot of html) {
      expect(snapshot).not.toContain(CLIENT_SECRET);
      for (const token of issuer.issued) expect(snapshot).not.toContain(token);
    }
    expect(consoleErrors).toEqual([]);
  });
});
