/**
 * The OAuth token endpoint down (500s) for a while: mail waits in the queue with backoff and
 * goes out once the endpoint answers again; the server is never marked for
 * re-authorization. The issue asks for a minute of outage; the drill scales it to the
 * retry schedule it runs with (a few seconds), which exercises the same path.
 */
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { systemActor } from "../../src/core/audit.js";
import type { Caller } from "../helpers/app.js";
import { availableDialects, tempDir } from "../helpers/databases.js";
import { waitFor } from "../helpers/wait.js";
import { FROM, type Harness, outcomeOf, startHarness } from "../oauth/harness.js";
import { answers } from "../oauth/issuer.js";
import { type SmtpPeer, startSmtpPeer } from "../peers/smtp-peer.js";

describe.each(await availableDialects())("a token endpoint outage on %s", (dialect) => {
  let h: Harness;
  let peer: SmtpPeer;
  let app: Caller;

  beforeAll(async () => {
    peer = await startSmtpPeer({ security: "starttls", auth: { user: FROM, accessToken: "none-yet", methods: ["XOAUTH2"] } });
    const caFile = path.join(tempDir(), "ca.pem");
    fs.writeFileSync(caFile, peer.ca);
    h = await startHarness(dialect, "google", {
      MAILROOM_EXTRA_CA_FILE: caFile,
      MAILROOM_POLL_MS: "20",
      MAILROOM_RETRY_SCHEDULE: "0.3,0.6,1",
      MAILROOM_MAX_ATTEMPTS: "20",
    });
    const { token } = await h.t.mailroom.tokens.create({ name: "app", permissions: ["messages.send"] }, systemActor, null);
    app = { headers: { authorization: `Bearer ${token}` } };
    h.t.mailroom.worker.start();
  });
  afterAll(async () => {
    await h?.close();
    await peer?.close();
  });

  it("keeps mail queued through the outage and sends it after, without asking for re-authorization", async () => {
    const id = await h.createServer(undefined, { host: "localhost", port: peer.port, security: "starttls" });
    expect(outcomeOf(await h.connect(id)).oauth).toBe("success");
    // The peer accepts every token the issuer hands out (the live list).
    peer.setAuth({ user: FROM, methods: ["XOAUTH2"], accessToken: h.issuer.issued, tokenRejection: "gmail" });
    await h.expireAccessToken(id);

    // Every token request fails for the next stretch.
    for (let i = 0; i < 6; i++) h.issuer.next.push(answers.serverError(503));
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await h.t.request(app, {
        method: "POST",
        url: "/api/messages",
        payload: { server: id, to: "rcpt@example.net", subject: `outage ${i}`, text: "x" },
      });
      ids.push(res.json().id);
    }
    await waitFor(
      "a failed token request",
      async () => h.issuer.requests.filter((r) => r.grantType === "refresh_token").length >= 1,
    );
    await waitFor("the endpoint to recover", async () => h.issuer.next.length === 0, 30_000);
    const rows = await waitFor(
      "all five to be sent",
      async () => {
        const all = await Promise.all(ids.map((m) => h.t.mailroom.messages.getRow(m)));
        return all.every((r) => r.status === "sent") ? all : null;
      },
      30_000,
    );
    expect(rows).toHaveLength(5);
    const attempts = await h.t.mailroom.ctx.db
      .selectFrom("message_attempts")
      .selectAll()
      .where("message_id", "in", ids)
      .execute();
    const waits = attempts.filter((a) => a.outcome !== "sent");
    expect(waits.length).toBeGreaterThan(0);
    expect(waits.every((a) => a.outcome === "transient" && a.error_code === "oauth_token_unavailable")).toBe(true);
    expect((await h.server(id)).status).toBe("ready");
    expect((await h.audit()).some((e) => e.action.includes("reauthorization"))).toBe(false);
  }, 60_000);
});
