import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { permissions } from "../../src/auth/permissions.js";
import { systemActor } from "../../src/core/audit.js";
import { routePermissions } from "../../src/http/route-permissions.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { availableDialects } from "../helpers/databases.js";

/** A small seeded generator (mulberry32), so a failing run can be replayed with its seed. */
function rng(seed: number) {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SEED = Number(process.env.FUZZ_SEED ?? 20261126);
const REQUESTS = 10_000;

const nasty = [
  "",
  "a\r\nBcc: victim@example.com",
  "x".repeat(70_000),
  "\u0000",
  "subject\u0000",
  "\u001b[31mred\u0007\u007f",
  "tab\there",
  "💥",
  "<script>alert(1)</script>",
  "../../etc/passwd",
  "' or 1=1 --",
  "%s%n",
  "name@example.com",
  "smtp",
  "-oQ/tmp/x",
];

// Apart, so that a control character (refused first) does not hide the other query checks.
const queries = ["?limit=-1&offset=abc", "?q=%00", "?q=a%0Ab&limit=1", "?bogus=1", "?limit=1&limit=2", "?status=%E2%9C%89"];

function randomValue(r: () => number, depth = 0): unknown {
  const pick = Math.floor(r() * (depth > 2 ? 6 : 9));
  switch (pick) {
    case 0:
      return null;
    case 1:
      return r() < 0.5;
    case 2:
      return [0, -1, 1e308, 65536, 587, 3.5, Number.MAX_SAFE_INTEGER][Math.floor(r() * 7)];
    case 3:
    case 4:
      return nasty[Math.floor(r() * nasty.length)];
    case 5:
      return String.fromCharCode(...Array.from({ length: Math.floor(r() * 20) }, () => Math.floor(r() * 0xffff)));
    case 6:
      return Array.from({ length: Math.floor(r() * 4) }, () => randomValue(r, depth + 1));
    default: {
      const keys = [
        "name",
        "driver",
        "settings",
        "to",
        "subject",
        "from",
        "email",
        "password",
        "permissions",
        "value",
        "mode",
        "host",
        "port",
        "messages",
        "headers",
        "attachments",
        "idempotencyKey",
        "server",
        "extra",
      ];
      return Object.fromEntries(
        Array.from({ length: Math.floor(r() * 5) }, () => [keys[Math.floor(r() * keys.length)], randomValue(r, depth + 1)]),
      );
    }
  }
}

// PostgreSQL refuses NUL in text where SQLite stores it: the fuzz must run on both.
describe.each(await availableDialects())("fuzzing every route with malformed requests on %s", (dialect) => {
  let t: TestApp;
  let token: string;
  beforeAll(async () => {
    t = await startTestApp(dialect, { MAILROOM_LOG_LEVEL: "warn" });
    ({ token } = await t.mailroom.tokens.create({ name: "fuzz", permissions: [...permissions] }, systemActor, null));
  });
  afterAll(() => t.close());

  async function counts(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const table of ["email_servers", "users", "groups", "api_tokens", "messages", "sessions"] as const) {
      const { n } = await t.mailroom.ctx.db
        .selectFrom(table)
        .select((eb) => eb.fn.countAll<number>().as("n"))
        .executeTakeFirstOrThrow();
      out[table] = Number(n);
    }
    return out;
  }

  /**
   * Valid requests a fuzzer can hit by chance that store nothing: erasing an address no message
   * names, putting retention back to the environment's periods when nothing overrides them, and
   * asking which route a message would take (a question sent as POST).
   */
  function changesNothing(pattern: string, body: { messages?: number }): boolean {
    if (pattern === "/api/recipients/:address/data") return body.messages === 0;
    return pattern === "/api/settings/retention" || pattern === "/api/routes/explain";
  }

  it(`answers ${REQUESTS} random requests without a 5xx and stores nothing (seed ${SEED})`, async () => {
    const r = rng(SEED);
    const routes = Object.keys(routePermissions).filter((k) => k !== "POST /api/auth/logout");
    const before = await counts();
    const statuses = new Map<number, number>();
    const writesAccepted: string[] = [];
    for (let i = 0; i < REQUESTS; i++) {
      const [method, pattern] = routes[Math.floor(r() * routes.length)].split(" ");
      const url = pattern.replace(/:[a-zA-Z]+/g, () => {
        try {
          return encodeURIComponent(String(randomValue(r)).slice(0, 300)) || "x";
        } catch {
          return "%ED%A0%80"; // a lone surrogate, percent-encoded as raw bytes
        }
      });
      const kind = r();
      const headers: Record<string, string> = { authorization: `Bearer ${token}` };
      let payload: string | Buffer | undefined;
      if (method !== "GET" && method !== "DELETE") {
        headers["content-type"] = kind < 0.9 ? "application/json" : "text/plain";
        payload =
          kind < 0.7
            ? JSON.stringify(randomValue(r))
            : kind < 0.8
              ? Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]) // {"a":"<invalid UTF-8>"}
              : kind < 0.85
                ? "{not json"
                : "x".repeat(Math.floor(r() * 200_000));
      }
      const res = await t.app.inject({
        method: method as "GET",
        url: `${url}${r() < 0.2 ? queries[Math.floor(r() * queries.length)] : ""}`,
        headers,
        payload,
      });
      statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
      if (res.statusCode >= 500)
        throw new Error(
          `${method} ${url} → ${res.statusCode} ${res.body.slice(0, 500)} (payload ${String(payload).slice(0, 200)})`,
        );
      if (res.statusCode >= 400) {
        const body = res.json();
        expect(typeof body.code).toBe("string");
        expect(typeof body.message).toBe("string");
      } else if (method !== "GET" && !changesNothing(pattern, res.json())) {
        writesAccepted.push(`${method} ${url} ${res.statusCode}`);
      }
    }
    console.log(`fuzz: ${[...statuses.entries()].map(([s, n]) => `${s}×${n}`).join(" ")}`);
    expect(writesAccepted).toEqual([]);
    expect(await counts()).toEqual(before);
  }, 180_000);
});
