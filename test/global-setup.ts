import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";

/**
 * Builds dist/ once before the tests that start Mailroom as a real process (the CLI, the
 * crash test, the browser tests). A type error does not stop tsc from emitting; the
 * separate typecheck step in CI reports those.
 */
export default function setup(): void {
  try {
    execFileSync("npx", ["tsc", "-p", "tsconfig.build.json"], { stdio: "pipe" });
  } catch (error) {
    if (!existsSync("dist/cli/main.js")) throw error;
  }
}
