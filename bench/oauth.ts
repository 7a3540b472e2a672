/**
 * OAuth economy: N messages through a Gmail server against the local OAuth issuer, with
 * access tokens that last 60 s, over STARTTLS + XOAUTH2 to a local SMTP peer. Counts the
 * token requests: the target is one per token lifetime, not one per message or connection.
 * `--auth=client_secret` does the same with app-only credentials: a Microsoft 365 server
 * with a client secret against the Entra-shaped token endpoint (client credentials grant),
 * no person authorizing anything.
 *
 *   npm run bench -- oauth --n=10000 --lifetime=60 --db=sqlite|postgres [--auth=client_secret]
 */
import fs from "node:fs";
import path from "node:path";
import { startMailroom } from "../src/cli/serve.js";
import { systemActor } from "../src/core/audit.js";
import { APP_CLIENT_ID, APP_SECRET, startAppIssuer } from "../test/oauth/app-issuer.js";
import { startIssuer, TENANT_ID } from "../test/oauth/issuer.js";
import { startSmtpPeer } from "../test/peers/smtp-peer.js";
import { arg, type BenchDialect, benchConfig, report } from "./lib.js";

const N = Number(arg("n", "10000"));
const lifetime = Number(arg("lifetime", "60"));
const dialect = arg("db", "sqlite") as BenchDialect;
const appOnly = arg("auth", "delegated") === "client_secret";
const FROM = "sender@example.com";

const app = appOnly ? await startAppIssuer("microsoft") : null;
const issuer = app?.issuer ?? (await startIssuer("google"));
issuer.lifetimeSeconds = lifetime;
const peer = await startSmtpPeer({
  security: "starttls",
  auth: { user: FROM, accessToken: issuer.issued, methods: ["XOAUTH2"] },
});
const { config, drop } = await benchConfig(dialect, { ...(app?.env ?? issuer.env), MAILROOM_POOL_SIZE: "5" });
fs.writeFileSync(path.join(config.dataDir, "peer-ca.pem"), peer.ca);
const running = await startMailroom({ ...config, extraCa: peer.ca });
try {
  const base = running.url;
  // Sign in and authorize as an admin would, through the HTTP API and the issuer's redirect.
  const login = await fetch(`${base}/api/auth/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email: "bench@example.com", password: "bench-password-123" }),
  });
  const cookie = (login.headers.get("set-cookie") ?? "").split(";")[0];
  const { csrfToken } = (await login.json()) as { csrfToken: string };
  if (app) {
    await running.mailroom.servers.create(
      {
        name: "Microsoft 365 app-only",
        driver: "microsoft365",
        fromAddress: FROM,
        isDefault: true,
        settings: {
          host: "localhost",
          port: peer.port,
          authMethod: "client_secret",
          tenant: TENANT_ID,
          clientId: APP_CLIENT_ID,
          clientSecret: APP_SECRET,
          messagesPerDay: 10_000_000,
        },
      },
      systemActor,
    );
  } else await authorizeGmail();

  async function authorizeGmail(): Promise<void> {
    const server = await running.mailroom.servers.create(
      {
        name: "Gmail",
        driver: "gmail",
        fromAddress: FROM,
        isDefault: true,
        settings: {
          host: "localhost",
          port: peer.port,
          clientId: "bench-client",
          clientSecret: "bench-secret",
          messagesPerDay: 10_000_000,
        },
      },
      systemActor,
    );
    const authorize = await fetch(`${base}/api/email-servers/${server.id}/oauth/authorize`, {
      method: "POST",
      headers: { cookie, "x-csrf-token": csrfToken },
    });
    const { authorizationUrl } = (await authorize.json()) as { authorizationUrl: string };
    // The browser's binding cookie for this authorization (sent back to /oauth, SameSite=Lax).
    const binding = (authorize.headers.get("set-cookie") ?? "").split(";")[0];
    const toCallback = await fetch(authorizationUrl, { redirect: "manual" });
    const callback = new URL(toCallback.headers.get("location") as string);
    const back = await fetch(`${base}${callback.pathname}${callback.search}`, {
      headers: { cookie: `${cookie}; ${binding}` },
      redirect: "manual",
    });
    if (!String(back.headers.get("location")).includes("oauth=success"))
      throw new Error(`authorization failed: ${back.headers.get("location")}`);
  }

  const { token } = await running.mailroom.tokens.create({ name: "bench", permissions: ["messages.send"] }, systemActor, null);
  const before = issuer.requests.length;
  const started = performance.now();
  for (let i = 0; i < N; i += 1000) {
    const messages = Array.from({ length: Math.min(1000, N - i) }, (_, k) => ({
      to: `r${i + k}@example.com`,
      subject: `oauth ${i + k}`,
      text: "x",
    }));
    const res = await fetch(`${base}/api/messages/batch`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ messages }),
    });
    if (res.status !== 202) throw new Error(`batch: ${res.status} ${await res.text()}`);
  }
  const db = running.mailroom.ctx.db;
  for (;;) {
    const { n } = await db
      .selectFrom("messages")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .where("status", "in", ["sent", "failed", "held"])
      .executeTakeFirstOrThrow();
    if (Number(n) >= N) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const seconds = (performance.now() - started) / 1000;
  // App-only: every token is a client credentials request; delegated: the refreshes.
  const wanted = app ? "client_credentials" : "refresh_token";
  const refreshes = issuer.requests.slice(before).filter((r) => r.grantType === wanted).length;
  const { sent } = await db
    .selectFrom("messages")
    .select((eb) => eb.fn.countAll<number>().as("sent"))
    .where("status", "=", "sent")
    .executeTakeFirstOrThrow();
  console.log(
    `# oauth: ${N} messages, ${app ? "app-only client secret" : "delegated"} tokens lasting ${lifetime} s, ${dialect}, node ${process.version}`,
  );
  report("oauth_messages_sent", Number(sent), "messages");
  report("oauth_duration", seconds, "s");
  report("oauth_token_lifetimes_elapsed", seconds / lifetime, "lifetimes");
  report("oauth_token_refresh_requests", refreshes, "requests");
  report("oauth_smtp_logins", peer.authAttempts.length, "logins");
} finally {
  await running.stop();
  await peer.close();
  await (app ?? issuer).stop();
  await drop();
}
