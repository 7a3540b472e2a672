import { execFileSync } from "node:child_process";
import { buildWebIfStale } from "./e2e/build-web.js";

/**
 * Builds dist/ once before the tests that start Mailroom as a real process (the CLI, the
 * crash test, the browser tests). A failed build fails the run, type errors included: tsc
 * may emit despite them, but what it emitted is code that does not typecheck, and an older
 * dist/ left in place would test yesterday's code while the run reports today's green. The
 * admin UI (web/dist) is built too when its sources changed.
 */
export default function setup(): void {
  try {
    execFileSync("npx", ["tsc", "-p", "tsconfig.build.json"], { stdio: "pipe" });
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: Buffer; stderr?: Buffer };
    const output = `${stdout?.toString() ?? ""}${stderr?.toString() ?? ""}`.trim();
    throw new Error(`The build (tsc -p tsconfig.build.json) failed; fix it before running tests:\n${output}`);
  }
  buildWebIfStale();
}
