/**
 * End to end: "Authorize account" against the local issuer, then mail over STARTTLS with
 * XOAUTH2 to the SMTP peer, the token coming from Mailroom's token store (tokenProvider).
 * The transport is the one the gmail and microsoft365 drivers build (createSmtpTransport
 * with oauth), given the test CA to trust: those drivers have no "verify certificate" off
 * switch, and TLS stays verified here.
 */
import { randomUUID } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { DeliveryError, type Transport } from "../../src/kernel/transport.js";
import { availableDialects } from "../helpers/databases.js";
import { type SmtpPeer, startSmtpPeer } from "../peers/smtp-peer.js";
import { FROM, type Harness, oauthMessage as message, oauthTransport, outcomeOf, startHarness } from "./harness.js";
import { answers } from "./issuer.js";

const dialects = await availableDialects();

describe.each(dialects)("XOAUTH2 with Mailroom's tokens on %s", (dialect) => {
  describe.each(["google", "microsoft"] as const)("%s", (kind) => {
    let h: Harness;
    let peer: SmtpPeer;
    const open: Transport[] = [];

    beforeAll(async () => {
      h = await startHarness(dialect, kind);
      peer = await startSmtpPeer({ security: "starttls", auth: { user: FROM, accessToken: "none-yet", methods: ["XOAUTH2"] } });
    });
    afterEach(async () => {
      await Promise.all(open.splice(0).map((t) => t.close()));
      peer.clear();
    });
    afterAll(async () => {
      await peer?.close();
      await h?.close();
    });

    /** Accept exactly the access tokens the issuer has handed out so far. */
    const acceptIssued = () =>
      peer.setAuth({ user: FROM, methods: ["XOAUTH2"], accessToken: [...h.issuer.issued], tokenRejection: "gmail" });

    async function authorizedTransport(seconds = 3600): Promise<{ id: string; transport: Transport }> {
      const id = await h.createServer(undefined, { host: "localhost", port: peer.port, security: "starttls" });
      h.issuer.lifetimeSeconds = seconds;
      try {
        expect(outcomeOf(await h.connect(id)).oauth).toBe("success");
      } finally {
        h.issuer.lifetimeSeconds = 3600;
      }
      return { id, transport: await transportFor(id) };
    }

    async function transportFor(id: string): Promise<Transport> {
      const transport = await oauthTransport(h, id, peer);
      open.push(transport);
      return transport;
    }

    it("authorizes, then sends over STARTTLS with the authorized account and its stored token", async () => {
      const { id, transport } = await authorizedTransport();
      acceptIssued();
      await transport.send(message("first"));
      const stored = await h.tokenRow(id);
      const token = h.t.mailroom.ctx.secrets.decrypt(String(stored?.access_token));
      expect(peer.authAttempts).toEqual([{ method: "XOAUTH2", user: FROM, accessToken: token, ok: true }]);
      expect(peer.received).toHaveLength(1);
      expect(peer.received[0]).toMatchObject({ user: FROM, secure: true, subject: "first" });
    });

    it("refreshes a token that expired between two sends before using it", async () => {
      const { id, transport } = await authorizedTransport();
      acceptIssued();
      await transport.send(message("before expiry"));
      await h.expireAccessToken(id);
      const refreshes = h.issuer.refreshRequests().length;
      h.issuer.next.push((response) => {
        peer.setAuth({ user: FROM, methods: ["XOAUTH2"], accessToken: String(response.body.access_token) });
      });
      // A logged-in connection outlives its token; the next login (a new connection) needs a fresh one.
      await transport.close();
      await (await transportFor(id)).send(message("after expiry"));
      expect(h.issuer.refreshRequests().length).toBe(refreshes + 1);
      expect(peer.received.map((m) => m.subject)).toEqual(["before expiry", "after expiry"]);
      expect(peer.authAttempts.every((a) => a.ok)).toBe(true);
    });

    it("renews once when the server rejects the token (334 then 535), and delivers", async () => {
      const { transport } = await authorizedTransport();
      const fresh = `renewed-${randomUUID()}`;
      // The server accepts only the token the next refresh will hand out.
      peer.setAuth({ user: FROM, methods: ["XOAUTH2"], accessToken: fresh, tokenRejection: "gmail" });
      h.issuer.next.push((response) => {
        response.body.access_token = fresh;
      });
      const refreshes = h.issuer.refreshRequests().length;
      await transport.send(message("after a rejected token"));
      expect(h.issuer.refreshRequests().length).toBe(refreshes + 1);
      expect(peer.authAttempts.map((a) => a.ok)).toEqual([false, true]);
      expect(peer.authAttempts[1].accessToken).toBe(fresh);
      expect(peer.received).toHaveLength(1);
    });

    it("a revoked grant stops sending for reauthorization; a new authorization sends again", async () => {
      const { id, transport } = await authorizedTransport();
      peer.setAuth({ user: FROM, methods: ["XOAUTH2"], accessToken: "accepts-nothing-issued", tokenRejection: "gmail" });
      h.issuer.next.push(answers.invalidGrant());
      const error = await transport.send(message("revoked")).then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(DeliveryError);
      expect(error).toMatchObject({ code: "oauth_reauthorization_required", kind: "reauthorization" });
      expect(peer.received).toHaveLength(0);
      expect((await h.server(id)).status).toBe("reauthorization_required");

      expect(outcomeOf(await h.connect(id)).oauth).toBe("success");
      acceptIssued();
      await transport.send(message("re-authorized"));
      expect(peer.received.map((m) => m.subject)).toEqual(["re-authorized"]);
      await h.expectNoLeaks();
    });
  });
});
