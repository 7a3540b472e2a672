import { Writable } from "node:stream";
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from "fastify";
import pino from "pino";
import { bootstrap, createMailroom, type Mailroom, type MailroomOptions } from "../../src/app.js";
import type { Permission } from "../../src/auth/permissions.js";
import { systemActor } from "../../src/core/audit.js";
import { secretFieldKeys } from "../../src/drivers/registry.js";
import { buildServer } from "../../src/http/server.js";
import { redactionPaths } from "../../src/logger.js";
import { type Dialect, freshConfig } from "./databases.js";

export const ADMIN_EMAIL = "admin@example.com";
export const ADMIN_PASSWORD = "correct horse battery staple";

/** A signed-in caller: a session (cookie + CSRF token) or an API token. */
export interface Caller {
  headers: Record<string, string>;
}

export interface TestApp {
  mailroom: Mailroom;
  app: FastifyInstance;
  /** Every log line the app wrote, as text: tests search it for secrets. */
  logs: string[];
  admin: Caller;
  request(caller: Caller | null, options: InjectOptions): Promise<LightMyRequestResponse>;
  login(email: string, password: string): Promise<Caller>;
  /** A user in a group with exactly these permissions, signed in. */
  userWith(permissions: Permission[], email?: string): Promise<Caller>;
  close(): Promise<void>;
}

/** A Mailroom on a fresh database of the dialect, driven through fastify.inject. */
export async function startTestApp(
  dialect: Dialect,
  env: Record<string, string> = {},
  { clock }: MailroomOptions = {},
): Promise<TestApp> {
  const { config, drop } = await freshConfig(dialect, {
    MAILROOM_ADMIN_EMAIL: ADMIN_EMAIL,
    MAILROOM_ADMIN_PASSWORD: ADMIN_PASSWORD,
    MAILROOM_LOG_LEVEL: "debug",
    // As the default is only where /usr/sbin/sendmail exists: the same on every machine.
    MAILROOM_SENDMAIL_COMMANDS: JSON.stringify({ sendmail: ["/usr/sbin/sendmail", "-i"] }),
    ...env,
  });
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      logs.push(String(chunk));
      done();
    },
  });
  const log = pino({ level: "debug", redact: { paths: redactionPaths(secretFieldKeys), censor: "[redacted]" } }, sink);
  const mailroom = createMailroom(config, log, { clock });
  await bootstrap(mailroom);
  // Every test request comes from 127.0.0.1: the guessing limits (test/security tests them) stay out of the way.
  const app = await buildServer(mailroom, { signInLimits: { perAccount: 1000, perAddress: 1000 } });

  const request = (caller: Caller | null, options: InjectOptions) =>
    app.inject({ ...options, headers: { ...(caller?.headers ?? {}), ...(options.headers ?? {}) } });

  const login = async (email: string, password: string): Promise<Caller> => {
    const res = await app.inject({ method: "POST", url: "/api/auth/login", payload: { email, password } });
    if (res.statusCode !== 200) throw new Error(`login failed: ${res.statusCode} ${res.body}`);
    const cookie = res.cookies.find((c) => c.name === "mailroom_session");
    return { headers: { cookie: `mailroom_session=${cookie?.value}`, "x-csrf-token": res.json().csrfToken } };
  };

  let users = 0;
  const userWith = async (permissions: Permission[], email = `user${++users}@example.com`): Promise<Caller> => {
    const group = await mailroom.users.createGroup({ name: `group-${email}`, permissions }, systemActor);
    await mailroom.users.create({ email, name: email, password: ADMIN_PASSWORD, groupIds: [group.id] }, systemActor);
    return login(email, ADMIN_PASSWORD);
  };

  const admin = await login(ADMIN_EMAIL, ADMIN_PASSWORD);
  return {
    mailroom,
    app,
    logs,
    admin,
    request,
    login,
    userWith,
    async close() {
      await app.close();
      await mailroom.close();
      await drop();
    },
  };
}
