import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { buildWebIfStale } from "./e2e/build-web.js";

/**
 * Builds dist/ once before the tests that start Mailroom as a real process (the CLI, the
 * crash test, the browser tests). A type error does not stop tsc from emitting; the
 * separate typecheck step in CI reports those. The admin UI (web/dist) is built too when its
 * sources changed.
 */
export default function setup(): void {
  try {
    execFileSync("npx", ["tsc", "-p", "tsconfig.build.json"], { stdio: "pipe" });
  } catch (error) {
    if (!existsSync("dist/cli/main.js")) throw error;
  }
  buildWebIfStale();
}
