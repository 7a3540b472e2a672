import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, renameSync, rmSync, statSync } from "node:fs";
import path from "node:path";

const WEB = "web";
const DIST = path.join(WEB, "dist");
/** What the built UI is made of: when none is newer than the build, the build is kept. */
const SOURCES = [
  path.join(WEB, "src"),
  path.join(WEB, "public"),
  path.join(WEB, "index.html"),
  path.join(WEB, "vite.config.ts"),
  "src/kernel/errors.ts",
];

function newest(entry: string): number {
  if (!existsSync(entry)) return 0;
  const stat = statSync(entry);
  if (!stat.isDirectory()) return stat.mtimeMs;
  return Math.max(stat.mtimeMs, ...readdirSync(entry).map((name) => newest(path.join(entry, name))));
}

/**
 * Builds the admin UI into web/dist when its sources changed. The build goes to a folder of
 * its own and is swapped in whole, so a Mailroom started by another test run never sees a
 * half-written web/dist.
 */
export function buildWebIfStale(): void {
  const index = path.join(DIST, "index.html");
  if (existsSync(index) && statSync(index).mtimeMs >= Math.max(...SOURCES.map(newest))) return;
  const temp = path.join(WEB, `.dist-${process.pid}`);
  const old = path.join(WEB, `.dist-old-${process.pid}`);
  try {
    execFileSync("npx", ["vite", "build", WEB, "--outDir", path.resolve(temp), "--emptyOutDir", "--logLevel", "warn"], {
      stdio: "pipe",
    });
    if (existsSync(DIST)) renameSync(DIST, old);
    renameSync(temp, DIST);
  } catch (error) {
    const output = (error as { stderr?: Buffer }).stderr?.toString() ?? String(error);
    // The API tests do not need the UI; the browser tests fail with this reason.
    console.warn(`The admin UI did not build (browser tests will fail):\n${output}`);
  } finally {
    rmSync(temp, { recursive: true, force: true });
    rmSync(old, { recursive: true, force: true });
  }
}
