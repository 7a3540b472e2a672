/**
 * Token refresh across two real Mailroom processes on one PostgreSQL database: a Microsoft
 * 365 server whose access tokens live 2 seconds (fresh for the first one), mail sent through
 * both processes wave after wave, the SMTP peer closing its connections after each wave so
 * that every wave logs in again and needs a current token. The issuer must see exactly one
 * refresh per token lifetime (never two processes refreshing the same token), and every
 * message must arrive once.
 */
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { systemActor } from "../../src/core/audit.js";
import { generateKeyText } from "../../src/storage/secrets.js";
import { postgresUnavailableReason, tempDir } from "../helpers/databases.js";
import { type MailroomProcess, spawnMailroom } from "../helpers/process.js";
import { waitFor } from "../helpers/wait.js";
import { type Harness, outcomeOf, startHarness } from "../oauth/harness.js";
import { type SmtpPeer, startSmtpPeer } from "../peers/smtp-peer.js";

const reason = await postgresUnavailableReason();
if (reason && process.env.CI) throw new Error(`CI needs PostgreSQL: ${reason}`);
if (reason) console.warn(`[skip] OAuth refresh across processes: ${reason}`);

const LIFETIME_S = 2;
/** Refreshes to see before stopping: three lifetimes after the first token. */
const REFRESHES = 3;

describe.skipIf(!!reason)("OAuth token refresh across two Mailroom processes on one PostgreSQL", () => {
  let h: Harness;
  let peer: SmtpPeer;
  const nodes: MailroomProcess[] = [];
  /** When the issuer answered each token request, and with which refresh token it came. */
  const answered: { at: number; grantType: string; refreshToken?: string; issuedRefreshToken?: string }[] = [];

  beforeAll(async () => {
    peer = await startSmtpPeer({ security: "starttls", auth: { user: "sender@example.com", methods: ["XOAUTH2"] } });
    const caFile = path.join(tempDir(), "ca.pem");
    fs.writeFileSync(caFile, peer.ca);
    const secretKey = generateKeyText();
    const shared = { MAILROOM_SECRET_KEY: secretKey, MAILROOM_EXTRA_CA_FILE: caFile };
    h = await startHarness("postgres", "microsoft", shared);
    h.issuer.server.service.on(
      "beforeResponse",
      (response: { body: Record<string, unknown> }, req: { body: Record<string, string> }) => {
        answered.push({
          at: Date.now(),
          grantType: req.body.grant_type,
          refreshToken: req.body.refresh_token,
          issuedRefreshToken: response.body.refresh_token as string | undefined,
        });
      },
    );
    // The peer accepts every access token the issuer handed out (the list grows as it issues).
    peer.setAuth({ user: "sender@example.com", methods: ["XOAUTH2"], accessToken: h.issuer.issued, tokenRejection: "outlook" });
    const env = (i: number) => ({
      ...h.issuer.env,
      ...shared,
      DATABASE_URL: h.t.mailroom.ctx.config.databaseUrl as string,
      MAILROOM_DATA_DIR: tempDir(`mailroom-oauth-node${i}-`),
      MAILROOM_POLL_MS: "20",
      MAILROOM_RETRY_SCHEDULE: "0.05",
    });
    // A loaded machine may take a while to start two processes.
    nodes.push(...(await Promise.all([0, 1].map((i) => spawnMailroom(env(i), 90_000)))));
  }, 120_000);

  afterAll(async () => {
    for (const node of nodes) node.child.kill("SIGTERM");
    await Promise.all(nodes.map((n) => n.exited));
    await h?.close();
    await peer?.close();
  });

  it("refreshes once per token lifetime between them, and sends every message once", async () => {
    h.issuer.lifetimeSeconds = LIFETIME_S;
    const serverId = await h.createServer("Cluster 365", { host: "localhost", port: peer.port, security: "starttls" });
    expect(outcomeOf(await h.connect(serverId)).oauth).toBe("success");
    const { token } = await h.t.mailroom.tokens.create({ name: "cluster", permissions: ["messages.send"] }, systemActor, null);

    const ids: string[] = [];
    const sendThrough = async (node: MailroomProcess, subject: string) => {
      const res = await fetch(`${node.url}/api/messages`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ server: serverId, to: "rcpt@example.net", subject, text: "x" }),
      });
      expect(res.status, await res.clone().text()).toBe(202);
      ids.push(((await res.json()) as { id: string }).id);
    };
    const refreshes = () => answered.filter((a) => a.grantType === "refresh_token");
    const allSent = async () => {
      const rows = await h.t.mailroom.ctx.db.selectFrom("messages").select("status").where("id", "in", ids).execute();
      return rows.length === ids.length && rows.every((r) => r.status === "sent");
    };

    // Waves until the tokens have been renewed REFRESHES times: no fixed wait, the waves are the work.
    let wave = 0;
    await waitFor(
      `${REFRESHES} refreshes`,
      async () => {
        wave++;
        await Promise.all(nodes.flatMap((node, n) => [0, 1, 2].map((k) => sendThrough(node, `wave ${wave} node ${n} #${k}`))));
        await waitFor(`wave ${wave} to be sent`, allSent, 30_000);
        peer.disconnectAll();
        return refreshes().length >= REFRESHES;
      },
      90_000,
    );

    // Every message once, none lost.
    expect(await allSent()).toBe(true);
    const rows = await h.t.mailroom.ctx.db.selectFrom("messages").select("message_id").where("id", "in", ids).execute();
    const arrivals = new Map<string, number>();
    for (const m of peer.received) {
      const id = (m.messageId ?? "").replace(/^<|>$/g, "");
      arrivals.set(id, (arrivals.get(id) ?? 0) + 1);
    }
    expect(rows.map((r) => arrivals.get(r.message_id) ?? 0)).toEqual(rows.map(() => 1));

    // One request per lifetime: each refresh presents the refresh token the previous answer
    // rotated in (two processes refreshing one token would present the same one twice)...
    const tokenAnswers = answered.filter((a) => a.grantType === "authorization_code" || a.grantType === "refresh_token");
    expect(tokenAnswers[0].grantType).toBe("authorization_code");
    for (let i = 1; i < tokenAnswers.length; i++) {
      expect(tokenAnswers[i].refreshToken, `refresh ${i} uses the refresh token of answer ${i - 1}`).toBe(
        tokenAnswers[i - 1].issuedRefreshToken,
      );
    }
    // ...and none while the token before it was still fresh (half its lifetime).
    const gaps = tokenAnswers.slice(1).map((a, i) => a.at - tokenAnswers[i].at);
    expect(gaps.filter((gap) => gap < (LIFETIME_S * 1000) / 2)).toEqual([]);
    // Each wave logged in again, with tokens of the issuer only.
    expect(peer.authAttempts.filter((a) => a.ok).length).toBeGreaterThanOrEqual(wave);
    expect(peer.authAttempts.filter((a) => !a.ok)).toEqual([]);
    console.log(
      `two processes: ${ids.length} messages in ${wave} waves, ${refreshes().length} refreshes, ${peer.authAttempts.length} XOAUTH2 logins`,
    );
  }, 180_000);
});
