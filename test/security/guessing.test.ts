import type { FastifyInstance, InjectOptions } from "fastify";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { MAX_DELAY_MS } from "../../src/auth/throttle.js";
import { systemActor } from "../../src/core/audit.js";
import { buildServer } from "../../src/http/server.js";
import { expectError } from "../api/fixtures.js";
import { ADMIN_PASSWORD, startTestApp, type TestApp } from "../helpers/app.js";
import { availableDialects } from "../helpers/databases.js";

/**
 * Issue 9, finding 10: guessing a password must be slow, and a busy office must never be
 * refused a right password. The limits' clock is moved by the test, never waited for.
 */
describe.each(await availableDialects())("password guessing on %s", (dialect) => {
  let t: TestApp;
  let app: FastifyInstance;
  let now: number;
  let seq = 0;
  /** Each test comes from an address of its own, so their failures per address do not add up. */
  let address: string;

  beforeAll(async () => {
    t = await startTestApp(dialect);
  });
  afterAll(() => t.close());
  // A server with the default limits (the test helper's are raised) and a clock of the test's.
  beforeEach(async () => {
    now = Date.now();
    address = `192.0.2.${++seq}`;
    app = await buildServer(t.mailroom, { now: () => now });
  });
  afterEach(() => app.close());

  const inject = (options: InjectOptions) => app.inject(options);
  async function newUser(): Promise<string> {
    const email = `guessed-${++seq}-${dialect}@example.com`;
    await t.mailroom.users.create({ email, password: ADMIN_PASSWORD }, systemActor);
    return email;
  }
  const login = (email: string, password: string, remoteAddress = address) =>
    inject({ method: "POST", url: "/api/auth/login", payload: { email, password }, remoteAddress });

  it("60 wrong current passwords on POST /api/auth/password: 5 are checked, the rest answer 429", async () => {
    const email = await newUser();
    const signedIn = await login(email, ADMIN_PASSWORD);
    const cookie = signedIn.cookies.find((c) => c.name === "mailroom_session")?.value;
    const headers = { cookie: `mailroom_session=${cookie}`, "x-csrf-token": signedIn.json().csrfToken };
    const change = (currentPassword: string) =>
      inject({
        method: "POST",
        url: "/api/auth/password",
        headers,
        remoteAddress: address,
        payload: { currentPassword, newPassword: "a brand new password" },
      });
    const answers: number[] = [];
    for (let i = 0; i < 60; i++) {
      const res = await change(`guess number ${i}`);
      answers.push(res.statusCode);
      if (res.statusCode === 429) {
        expect(res.json().code).toBe("too_many_attempts");
        expect(Number(res.headers["retry-after"])).toBeGreaterThan(0);
      }
    }
    expect(answers.filter((s) => s === 401)).toHaveLength(5);
    expect(answers.filter((s) => s === 429)).toHaveLength(55);
    // The right password waits its turn too, then works.
    const waiting = await change(ADMIN_PASSWORD);
    expectError(waiting, 429, "too_many_attempts");
    now += Number(waiting.headers["retry-after"]) * 1000;
    expect((await change(ADMIN_PASSWORD)).statusCode).toBe(204);
  });

  it("a right password is never refused for the successes before it, from one address", async () => {
    const email = await newUser();
    for (let i = 0; i < 15; i++) expect((await login(email, ADMIN_PASSWORD)).statusCode, `sign-in ${i + 1}`).toBe(200);
    // A few typos among them do not add up with the successes either.
    for (let i = 0; i < 3; i++) expectError(await login(email, "a typo in it"), 401, "invalid_credentials");
    expect((await login(email, ADMIN_PASSWORD)).statusCode).toBe(200);
  });

  it("waits double after each failure past 5, up to 15 minutes; then the owner's password gets in", async () => {
    const email = await newUser();
    for (let i = 0; i < 5; i++) expectError(await login(email, "wrong"), 401, "invalid_credentials");
    const waits: number[] = [];
    for (let i = 0; i < 12; i++) {
      const refused = await login(email, "wrong");
      expectError(refused, 429, "too_many_attempts");
      const seconds = Number(refused.headers["retry-after"]);
      waits.push(seconds);
      now += seconds * 1000;
      // Once the wait is over one more guess is checked, and fails.
      expectError(await login(email, "wrong"), 401, "invalid_credentials");
    }
    expect(waits).toEqual([2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900, 900]);
    expect(Math.max(...waits) * 1000).toBe(MAX_DELAY_MS);
    const waiting = await login(email, ADMIN_PASSWORD);
    expectError(waiting, 429, "too_many_attempts");
    now += Number(waiting.headers["retry-after"]) * 1000;
    expect((await login(email, ADMIN_PASSWORD)).statusCode).toBe(200);
    // The right password cleared the account's count.
    expectError(await login(email, "wrong"), 401, "invalid_credentials");
  });

  it("one address trying many accounts is slowed after 20 failures, its successes never count; another address is not", async () => {
    const email = await newUser();
    // Unknown accounts: the answer (and the count) is the same as for known ones.
    for (let i = 0; i < 19; i++) {
      expectError(await login(`nobody-${i}@example.com`, "wrong", "203.0.113.7"), 401, "invalid_credentials");
    }
    // Someone at that address signing in rightly, again and again, is neither refused nor counted.
    for (let i = 0; i < 3; i++) expect((await login(email, ADMIN_PASSWORD, "203.0.113.7")).statusCode).toBe(200);
    expectError(await login("nobody-19@example.com", "wrong", "203.0.113.7"), 401, "invalid_credentials");
    const refused = expectError(await login(email, "wrong", "203.0.113.7"), 429, "too_many_attempts");
    expect(refused.message).toContain("from your address");
    expectError(await login(email, "wrong", "203.0.113.8"), 401, "invalid_credentials");
    expect((await login(email, ADMIN_PASSWORD, "203.0.113.8")).statusCode).toBe(200);
  });

  it("parallel guesses are counted too: at most 5 of 20 at once are checked", async () => {
    const email = await newUser();
    const answers = await Promise.all(Array.from({ length: 20 }, () => login(email, "wrong")));
    const checked = answers.filter((res) => res.statusCode === 401).length;
    expect(checked).toBeGreaterThan(0);
    expect(checked).toBeLessThanOrEqual(5);
    for (const res of answers.filter((r) => r.statusCode !== 401)) expectError(res, 429, "too_many_attempts");
  });
});
