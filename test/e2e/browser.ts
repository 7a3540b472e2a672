/**
 * The browser side of the end-to-end tests: Debian's Chromium driven by playwright-core,
 * an accessibility check with axe-core on every screen, and screenshots at two widths.
 */
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { type Browser, type BrowserContext, chromium, type Locator, type Page } from "playwright-core";

export const CHROMIUM = process.env.MAILROOM_CHROMIUM ?? "/usr/bin/chromium";
export const SCREENSHOTS = path.resolve("test-results/screenshots");
export const WIDE = { width: 1280, height: 900 };
export const NARROW = { width: 390, height: 844 };

/** Why the browser tests cannot run here, or null. In CI a missing browser is a failure, not a skip. */
export function browserMissing(): string | null {
  if (existsSync(CHROMIUM)) return null;
  const reason = `Chromium is not at ${CHROMIUM} (install Debian's chromium, or set MAILROOM_CHROMIUM)`;
  if (process.env.CI) throw new Error(`${reason}; the browser tests must run in CI.`);
  return reason;
}

/** `extraArgs`, e.g. a --host-resolver-rules that sends a public host name to 127.0.0.1. */
export async function launchBrowser(extraArgs: string[] = []): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      ...extraArgs,
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-quic",
      "--no-first-run",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: unknown[]; failureSummary?: string }[];
}

/**
 * Runs axe-core in the page (through the DevTools protocol, so the page's CSP still holds for
 * the app itself) and returns the serious and critical violations as readable lines.
 */
export async function axeProblems(page: Page): Promise<string[]> {
  const loaded = await page.evaluate(() => typeof (window as unknown as { axe?: unknown }).axe !== "undefined");
  if (!loaded) await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => {
    const axe = (window as unknown as { axe: { run: (ctx: Document, opts: object) => Promise<{ violations: AxeViolation[] }> } })
      .axe;
    const result = await axe.run(document, { resultTypes: ["violations"] });
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5) }));
  });
  return violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map(
      (v) =>
        `${v.impact}: ${v.id} (${v.help}) at ${v.nodes.map((n) => `${JSON.stringify(n.target)} ${n.failureSummary ?? ""}`).join("; ")}`,
    );
}

/** Every screen checked so far, with what axe said, for the closing report. */
export const checked: { name: string; width: number; problems: string[] }[] = [];

/**
 * Checks a screen at 1280 px and at 390 px: no serious or critical axe violation, nothing
 * wider than the window at 390 px, and a screenshot of each in test-results/screenshots.
 */
export async function checkScreen(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const problems: string[] = [];
  for (const size of [WIDE, NARROW]) {
    await page.setViewportSize(size);
    // Let layout (and the chart's ResizeObserver) settle.
    await page.waitForTimeout(150);
    const found = await axeProblems(page);
    checked.push({ name, width: size.width, problems: found });
    problems.push(...found.map((p) => `${size.width}px ${p}`));
    if (size === NARROW) {
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      if (overflow > 1) problems.push(`390px: the page is ${overflow}px wider than the window`);
    }
    // A full-page picture shows the page's end, so the sticky save bar belongs there too.
    const unstick = await page.addStyleTag({ content: ".save-bar { position: static !important; }" });
    const file = path.join(SCREENSHOTS, `${name}-${size.width}.png`);
    if (await page.locator("iframe").count()) {
      // Chromium leaves a sandboxed frame blank in full-page captures: make the window as tall as the page instead.
      const height = await page.evaluate(() => document.documentElement.scrollHeight);
      await page.setViewportSize({ width: size.width, height });
      await page.waitForTimeout(300);
      await page.screenshot({ path: file });
    } else {
      await page.screenshot({ path: file, fullPage: true });
    }
    await unstick.evaluate((element) => (element as unknown as { remove(): void }).remove());
  }
  await page.setViewportSize(WIDE);
  if (problems.length) throw new Error(`Screen "${name}":\n${problems.join("\n")}`);
}

/** Waits until the locator is visible (playwright-core has no expect of its own). */
export async function visible(locator: Locator, timeout = 10_000): Promise<Locator> {
  try {
    await locator.first().waitFor({ state: "visible", timeout });
  } catch (error) {
    throw new Error(`${(error as Error).message}\n${await whatThePageShows(locator.page())}`);
  }
  return locator;
}

/** The address and the alerts on screen, so that a timeout in CI says what the user saw instead. */
async function whatThePageShows(page: Page): Promise<string> {
  try {
    const alerts = await page.locator('[role="alert"], [role="status"], .alert, .field-error, .reason').allInnerTexts();
    const heading = await page.locator("h1").allInnerTexts();
    return `The page was ${page.url()} (heading: ${JSON.stringify(heading)}), showing: ${JSON.stringify(alerts.filter((t) => t.trim()))}`;
  } catch {
    return `The page was ${page.url()}.`;
  }
}

export async function gone(locator: Locator, timeout = 10_000): Promise<void> {
  await locator.first().waitFor({ state: "detached", timeout });
}

export async function newContext(browser: Browser, baseURL: string): Promise<BrowserContext> {
  const context = await browser.newContext({ baseURL, viewport: WIDE });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: baseURL });
  return context;
}

/** Scripts in previewed mail that the sandbox stopped (each one is a console error). */
export const blockedSandboxScripts: string[] = [];

/** Console errors and CSP refusals the page produced; tests fail on unexpected ones. */
export function watchConsole(page: Page): string[] {
  const errors: string[] = [];
  page.on("console", (message) => {
    if (message.type() !== "error") return;
    const text = message.text();
    if (text.startsWith("Blocked script execution in 'about:srcdoc'")) {
      blockedSandboxScripts.push(text);
      return;
    }
    // A 401 from /api/auth/me before signing in, and 4xx answers the tests provoke on purpose.
    if (/Failed to load resource: the server responded with a status of 4\d\d/.test(text)) return;
    errors.push(text);
  });
  page.on("pageerror", (error) => errors.push(`page error: ${error.message}`));
  return errors;
}
