/**
 * The whole life of a Gmail / Microsoft 365 server through the real delivery worker:
 * authorize, send over STARTTLS + XOAUTH2, the grant revoked (invalid_grant) while mail is
 * queued → held and reauthorization_required, authorize again → the held mail goes out by
 * itself, each message once.
 */
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { systemActor } from "../../src/core/audit.js";
import type { Caller } from "../helpers/app.js";
import { availableDialects, tempDir } from "../helpers/databases.js";
import { waitFor } from "../helpers/wait.js";
import { type SmtpPeer, startSmtpPeer } from "../peers/smtp-peer.js";
import { FROM, type Harness, outcomeOf, startHarness } from "./harness.js";
import { answers } from "./issuer.js";

describe.each(await availableDialects())("held mail after a revoked grant on %s", (dialect) => {
  describe.each(["google", "microsoft"] as const)("%s", (kind) => {
    let h: Harness;
    let peer: SmtpPeer;
    let app: Caller;

    beforeAll(async () => {
      peer = await startSmtpPeer({ security: "starttls", auth: { user: FROM, accessToken: "none-yet", methods: ["XOAUTH2"] } });
      const caFile = path.join(tempDir(), "ca.pem");
      fs.writeFileSync(caFile, peer.ca);
      h = await startHarness(dialect, kind, {
        MAILROOM_EXTRA_CA_FILE: caFile,
        MAILROOM_POLL_MS: "20",
        MAILROOM_RETRY_SCHEDULE: "0.05",
      });
      const { token } = await h.t.mailroom.tokens.create(
        { name: "app", permissions: ["messages.send", "messages.view"] },
        systemActor,
        null,
      );
      app = { headers: { authorization: `Bearer ${token}` } };
      h.t.mailroom.worker.start();
    });
    afterAll(async () => {
      await h?.close();
      await peer?.close();
    });

    const acceptIssued = () =>
      peer.setAuth({ user: FROM, methods: ["XOAUTH2"], accessToken: [...h.issuer.issued], tokenRejection: "gmail" });

    async function send(server: string, subject: string): Promise<string> {
      const res = await h.t.request(app, {
        method: "POST",
        url: "/api/messages",
        payload: { server, to: "rcpt@example.net", subject, text: "x" },
      });
      expect(res.statusCode, res.body).toBe(202);
      return res.json().id;
    }
    const statusOf = async (id: string) => (await h.t.mailroom.messages.getRow(id)).status;

    it("holds mail while the grant is revoked and sends it, once, after a new authorization", async () => {
      const id = await h.createServer(undefined, { host: "localhost", port: peer.port, security: "starttls" });
      expect(outcomeOf(await h.connect(id)).oauth).toBe("success");
      acceptIssued();

      const first = await send(id, "before the revocation");
      await waitFor("the first message", async () => (await statusOf(first)) === "sent");
      expect(peer.received.at(-1)).toMatchObject({ user: FROM, secure: true, subject: "before the revocation" });

      // The token runs out; its refresh is answered invalid_grant (consent revoked).
      await h.expireAccessToken(id);
      h.issuer.next.push(answers.invalidGrant());
      // A connection already logged in needs no token: end the pooled ones, as a server's idle timeout would.
      await h.t.mailroom.transports.forget(id);
      const held = [await send(id, "held 1"), await send(id, "held 2"), await send(id, "held 3")];
      await waitFor("the messages to be held", async () => (await Promise.all(held.map(statusOf))).every((s) => s === "held"));
      const server = await h.server(id);
      expect(server.status).toBe("reauthorization_required");
      expect(server.statusDetail).toBeTruthy();
      const receivedBefore = peer.received.length;

      expect(outcomeOf(await h.connect(id)).oauth).toBe("success");
      acceptIssued();
      await waitFor("the held messages to go out", async () =>
        (await Promise.all(held.map(statusOf))).every((s) => s === "sent"),
      );
      const subjects = peer.received
        .slice(receivedBefore)
        .map((m) => m.subject)
        .sort();
      expect(subjects).toEqual(["held 1", "held 2", "held 3"]);
      expect((await h.server(id)).status).toBe("ready");
      const metrics = (await h.t.request(null, { method: "GET", url: "/metrics" })).body;
      expect(metrics).toContain(`mailroom_oauth_token_refreshes_total{server_id="${id}",result="invalid_grant"} 1`);
      expect(metrics).toMatch(/mailroom_delivery_attempts_total\{server="[^"]+",outcome="sent"\} 4/);
      await h.expectNoLeaks();
    }, 60_000);
  });
});
