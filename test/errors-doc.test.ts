import fs from "node:fs";
import { describe, expect, it } from "vitest";
import { errorCatalogue } from "../src/kernel/errors.js";

/** Rows of every table in docs/errors.md whose first cell is a `code`: [code, status]. */
function documentedCodes(markdown: string): [string, number][] {
  const rows: [string, number][] = [];
  for (const line of markdown.split("\n")) {
    const match = /^\|\s*`([a-z0-9_]+)`\s*\|\s*(\d{3})\s*\|\s*(.*?)\s*\|\s*$/.exec(line);
    if (!match) continue;
    expect(match[3].length, `docs/errors.md: ${match[1]} has no meaning or fix`).toBeGreaterThan(20);
    rows.push([match[1], Number(match[2])]);
  }
  return rows;
}

describe("docs/errors.md", () => {
  const markdown = fs.readFileSync(new URL("../docs/errors.md", import.meta.url), "utf8");
  const rows = documentedCodes(markdown);
  const documented = rows.map(([code]) => code);
  const catalogued = Object.keys(errorCatalogue);

  it("parses (the table has rows)", () => {
    expect(rows.length).toBeGreaterThan(20);
  });

  it("lists every code of the catalogue", () => {
    const missing = catalogued.filter((code) => !documented.includes(code));
    expect(missing, "codes in src/kernel/errors.ts but not in docs/errors.md").toEqual([]);
  });

  it("lists no code the catalogue does not have, and each once", () => {
    const extra = documented.filter((code) => !(code in errorCatalogue));
    expect(extra, "codes in docs/errors.md but not in src/kernel/errors.ts").toEqual([]);
    expect(
      documented.filter((code, i) => documented.indexOf(code) !== i),
      "codes listed twice",
    ).toEqual([]);
  });

  it("gives each code the HTTP status of the catalogue", () => {
    const wrong = rows
      .filter(([code, status]) => code in errorCatalogue && errorCatalogue[code as keyof typeof errorCatalogue].status !== status)
      .map(
        ([code, status]) =>
          `${code}: docs say ${status}, catalogue ${errorCatalogue[code as keyof typeof errorCatalogue].status}`,
      );
    expect(wrong).toEqual([]);
  });
});
