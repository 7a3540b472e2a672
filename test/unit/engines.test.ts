import fs from "node:fs";
import semver from "semver";
import { describe, expect, it } from "vitest";

/**
 * `npm ci` on the oldest Node.js that package.json's `engines` allows must print no
 * EBADENGINE warning: every installed package has to accept that version.
 */
describe("dependencies fit the declared engine", () => {
  const manifest = JSON.parse(fs.readFileSync("package.json", "utf8"));
  const lock = JSON.parse(fs.readFileSync("package-lock.json", "utf8"));
  const oldest = semver.minVersion(manifest.engines.node)?.version as string;

  it("names a minimum Node.js version", () => {
    expect(oldest).toMatch(/^20\./);
  });

  it("every locked package accepts it", () => {
    const refusing = Object.entries(lock.packages as Record<string, { engines?: { node?: string } }>)
      .filter(([name, pkg]) => name && pkg.engines?.node && !semver.satisfies(oldest, pkg.engines.node))
      .map(([name, pkg]) => `${name.replace(/^.*node_modules\//, "")} wants node ${pkg.engines?.node}`);
    expect(refusing).toEqual([]);
  });
});
