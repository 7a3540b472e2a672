/**
 * Token races across pooled SMTP connections, ordered by the SMTP peer (it holds its answers
 * to AUTH until the test lets them go):
 * - an expired token refused on every pooled connection is refreshed once, not once per
 *   connection: a connection refused a token another one has already replaced takes the
 *   replacement;
 * - a revoked Microsoft 365 grant (the peer answers 535 5.7.3, the token endpoint
 *   invalid_grant) ends as reauthorization_required every time, whichever connection's
 *   refusal comes last, never as failing.
 */
import fs from "node:fs";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { systemActor } from "../../src/core/audit.js";
import type { Transport } from "../../src/kernel/transport.js";
import type { Caller } from "../helpers/app.js";
import { availableDialects, tempDir } from "../helpers/databases.js";
import { waitFor } from "../helpers/wait.js";
import { type AuthAttempt, type PeerAuth, type SmtpPeer, startSmtpPeer } from "../peers/smtp-peer.js";
import { FROM, type Harness, oauthMessage, oauthTransport, outcomeOf, startHarness } from "./harness.js";
import { answers } from "./issuer.js";

const POOL = 4;

/** A promise and the function that settles it. */
function signal(): { promise: Promise<void>; fire: () => void } {
  let fire = () => {};
  const promise = new Promise<void>((resolve) => {
    fire = resolve;
  });
  return { promise, fire };
}

const dialects = await availableDialects();

describe.each(dialects)("one refresh per expiry across pooled connections on %s", (dialect) => {
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

    it.each(["gmail", "outlook"] as const)(
      "%d connections refused the same expired token: one token request, every message sent (%s-style refusal)".replace(
        "%d",
        String(POOL),
      ),
      async (style) => {
        const id = await h.createServer(undefined, { host: "localhost", port: peer.port, security: "starttls" });
        expect(outcomeOf(await h.connect(id)).oauth).toBe("success");
        const row = await h.tokenRow(id);
        const stale = h.t.mailroom.ctx.secrets.decrypt(String(row?.access_token));

        // The provider let the token expire before Mailroom expected (clock skew): every
        // connection logs in with it and is refused. The first refusal is answered once all
        // connections have tried it; the others only once its replacement is in use, so
        // they learn of their refusal after the refresh is over.
        const allTried = signal();
        const replacedInUse = signal();
        let staleTries = 0;
        const auth: PeerAuth = {
          user: FROM,
          methods: ["XOAUTH2"],
          accessToken: [],
          tokenRejection: style,
          hold: (attempt: AuthAttempt) => {
            if (attempt.ok) return replacedInUse.fire();
            if (attempt.accessToken !== stale) return;
            if (++staleTries === POOL) allTried.fire();
            return staleTries === 1 ? allTried.promise : replacedInUse.promise;
          },
        };
        peer.setAuth(auth);
        h.issuer.next.push((response) => {
          auth.accessToken = [String(response.body.access_token)];
        });

        const refreshes = h.issuer.refreshRequests().length;
        const transport = await oauthTransport(h, id, peer, POOL);
        open.push(transport);
        const subjects = Array.from({ length: POOL }, (_, i) => `pooled ${i + 1}`);
        await Promise.all(subjects.map((subject) => transport.send(oauthMessage(subject))));

        expect(h.issuer.refreshRequests().length - refreshes).toBe(1);
        expect(peer.received.map((m) => m.subject).sort()).toEqual(subjects);
        const refused = peer.authAttempts.filter((a) => !a.ok);
        expect(refused).toHaveLength(POOL);
        expect(refused.every((a) => a.accessToken === stale)).toBe(true);
        expect(new Set(peer.authAttempts.filter((a) => a.ok).map((a) => a.accessToken))).toEqual(new Set(auth.accessToken));
      },
    );
  });
});

describe.each(dialects)("a revoked Microsoft 365 grant on %s", (dialect) => {
  let h: Harness;
  let peer: SmtpPeer;
  let app: Caller;

  beforeAll(async () => {
    peer = await startSmtpPeer({ security: "starttls", auth: { user: FROM, accessToken: "none-yet", methods: ["XOAUTH2"] } });
    const caFile = path.join(tempDir(), "ca.pem");
    fs.writeFileSync(caFile, peer.ca);
    h = await startHarness(dialect, "microsoft", {
      MAILROOM_EXTRA_CA_FILE: caFile,
      MAILROOM_POOL_SIZE: String(POOL),
      MAILROOM_POLL_MS: "20",
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

  it("a login refused after the grant was found revoked neither makes the server failing nor clears the state", async () => {
    const id = await h.createServer("revoked, then refused");
    expect(outcomeOf(await h.connect(id)).oauth).toBe("success");
    const servers = h.t.mailroom.servers;
    await servers.setFault(id, "reauthorization_required", "Microsoft refused the refresh token: use 'Authorize account' again.");
    await servers.setFault(id, "failing", "535 5.7.3 Authentication unsuccessful (smtp_auth_failed)");
    expect(await h.server(id)).toMatchObject({
      status: "reauthorization_required",
      statusDetail: expect.stringContaining("Authorize"),
    });
    await servers.setFault(id, null, null);
    expect((await h.server(id)).status).toBe("reauthorization_required");
    // Only a new authorization ends it.
    expect(outcomeOf(await h.connect(id)).oauth).toBe("success");
    expect((await h.server(id)).status).toBe("ready");
  });

  // Odd runs: the refusals of all connections but the first are held until the refresh
  // has found the grant revoked, the order that turned the server `failing`. Even runs:
  // the connections race as they come.
  it.each([1, 2, 3, 4, 5, 6])("run %i ends reauthorization_required with every message held for it", async (run) => {
    const id = await h.createServer(`revoked ${run}`, { host: "localhost", port: peer.port, security: "starttls" });
    expect(outcomeOf(await h.connect(id)).oauth).toBe("success");
    const reauthorizationKnown = () =>
      waitFor("reauthorization_required", async () => (await h.server(id)).status === "reauthorization_required");
    let refusals = 0;
    peer.setAuth({
      user: FROM,
      methods: ["XOAUTH2"],
      // The grant was revoked: Outlook refuses its access token at once.
      accessToken: [],
      tokenRejection: "outlook",
      hold: run % 2 === 1 ? () => (++refusals === 1 ? undefined : reauthorizationKnown().then(() => {})) : undefined,
    });
    h.issuer.next.push(answers.invalidGrant("AADSTS50173: The provided grant has expired due to it being revoked."));
    const refreshes = h.issuer.refreshRequests().length;

    const res = await h.t.request(app, {
      method: "POST",
      url: "/api/messages/batch",
      payload: {
        messages: Array.from({ length: POOL + 2 }, (_, i) => ({
          server: id,
          to: "rcpt@example.net",
          subject: `m${i}`,
          text: "x",
        })),
      },
    });
    expect(res.statusCode, res.body).toBe(202);
    const ids: string[] = res.json().items.map((m: { id: string }) => m.id);
    const rows = () => h.t.mailroom.ctx.db.selectFrom("messages").selectAll().where("id", "in", ids).execute();
    await waitFor("every message held", async () => (await rows()).every((m) => m.status === "held"));

    const server = await h.server(id);
    expect(server.status).toBe("reauthorization_required");
    expect(server.statusDetail).toContain("Authorize account");
    // Held for the revoked grant, or (claimed after it was known) for the server's status:
    // never for a refused login, which would tell the admin to check credentials.
    const reasons = new Set((await rows()).map((m) => m.last_error_code));
    expect(reasons).toContain("oauth_reauthorization_required");
    expect([...reasons].filter((r) => r !== "oauth_reauthorization_required" && r !== "server_not_ready")).toEqual([]);
    expect(h.issuer.refreshRequests().length - refreshes).toBe(1);
    expect(peer.received).toHaveLength(0);
  });
});
