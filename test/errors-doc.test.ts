import fs from "node:fs";
import { describe, expect, it } from "vitest";
import { commonFields } from "../src/drivers/common-fields.js";
import { drivers } from "../src/drivers/registry.js";
import {
  declareDriverErrors,
  declaredDriverCodes,
  type ErrorCode,
  type ErrorEntry,
  errorCatalogue,
  errorEntry,
} from "../src/kernel/errors.js";

/** Rows of every table whose first cell is a `code`: [code, status]. */
function documentedCodes(markdown: string, file: string): [string, number][] {
  const rows: [string, number][] = [];
  for (const line of markdown.split("\n")) {
    const match = /^\|\s*`([a-z0-9_]+)`\s*\|\s*(\d{3})\s*\|\s*(.*?)\s*\|\s*$/.exec(line);
    if (!match) continue;
    expect(match[3].length, `${file}: ${match[1]} has no meaning or fix`).toBeGreaterThan(20);
    rows.push([match[1], Number(match[2])]);
  }
  return rows;
}

/** What is wrong between a page's code tables and the codes it must document. */
function differences(rows: [string, number][], codes: Readonly<Record<string, ErrorEntry>>) {
  const documented = rows.map(([code]) => code);
  return {
    missing: Object.keys(codes).filter((code) => !documented.includes(code)),
    extra: documented.filter((code) => !Object.hasOwn(codes, code)),
    twice: documented.filter((code, i) => documented.indexOf(code) !== i),
    wrongStatus: rows
      .filter(([code, status]) => Object.hasOwn(codes, code) && codes[code].status !== status)
      .map(([code, status]) => `${code}: docs say ${status}, code ${codes[code].status}`),
  };
}

const clean = { missing: [], extra: [], twice: [], wrongStatus: [] };

describe("docs/errors.md lists the shared catalogue (src/kernel/errors.ts)", () => {
  const rows = documentedCodes(fs.readFileSync(new URL("../docs/errors.md", import.meta.url), "utf8"), "docs/errors.md");

  it("parses (the tables have rows)", () => {
    expect(rows.length).toBeGreaterThan(20);
  });

  it("every code once, none the catalogue lacks, each with the catalogue's status", () => {
    expect(differences(rows, errorCatalogue)).toEqual(clean);
  });
});

describe.each(drivers.map((d) => [d.id, d] as const))("src/drivers/%s/README.md", (id, driver) => {
  const file = `src/drivers/${id}/README.md`;
  const readme = fs.readFileSync(new URL(`../${file}`, import.meta.url), "utf8");
  const own = driver.errors ?? {};

  it("lists the driver's own codes: every one once, none it lacks, each with its status", () => {
    expect(differences(documentedCodes(readme, file), own)).toEqual(clean);
  });

  it("names every setting of the driver", () => {
    const common = new Set(commonFields(driver).map((f) => f.key));
    const unnamed = driver.fields.filter((f) => !common.has(f.key) && !readme.includes(`\`${f.key}\``)).map((f) => f.key);
    expect(unnamed).toEqual([]);
  });

  it("declares its codes (so every layer finds their fix), named after it, none a shared one", () => {
    for (const [code, entry] of Object.entries(own)) {
      const prefix = `${id.replaceAll("-", "_")}_`;
      expect(code.startsWith(prefix), `${code} should start with ${prefix}`).toBe(true);
      expect(Object.hasOwn(errorCatalogue, code), `${code} is a shared code too`).toBe(false);
      expect(errorEntry(code as ErrorCode), `${code} is not declared with declareDriverErrors`).toBe(entry);
    }
  });
});

describe("drivers' own codes", () => {
  it("every declared code is in its driver's `errors` (so its README and GET /api/drivers have it)", () => {
    const listed = drivers.flatMap((d) => Object.keys(d.errors ?? {}));
    expect(declaredDriverCodes().filter((code) => !listed.includes(code))).toEqual([]);
  });

  it("a code cannot be declared with another meaning than the one it has", () => {
    expect(() => declareDriverErrors({ smtp_auth_failed: { status: 500, summary: "Something else." } })).toThrow(
      /smtp_auth_failed is declared twice/,
    );
    const other = { sendmail_failed: { status: 502, summary: "The sendmail program failed differently." } };
    expect(() => declareDriverErrors(other)).toThrow(/sendmail_failed is declared twice/);
    expect(errorEntry("sendmail_failed" as ErrorCode).summary).not.toContain("differently");
  });
});
