/**
 * The case SMTP submission exists for: an app that only knows a username and a password
 * sends through a Gmail server, and Mailroom delivers with XOAUTH2 (the OAuth grant from
 * "Authorize account" at the local issuer) to the SMTP peer, over verified STARTTLS.
 */
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { createTransport, type SendMailOptions } from "nodemailer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "../helpers/wait.js";
import { FROM, type Harness, outcomeOf, startHarness } from "../oauth/harness.js";
import { type SmtpPeer, startSmtpPeer } from "../peers/smtp-peer.js";
import { attachIntake, type IntakeHarness, SIGNED_INVITE } from "./harness.js";

describe("SMTP submission through a Gmail server", () => {
  let peer: SmtpPeer;
  let oauth: Harness;
  let h: IntakeHarness;
  let dir: string;

  beforeAll(async () => {
    peer = await startSmtpPeer({ security: "starttls", auth: { user: FROM, accessToken: "none-yet", methods: ["XOAUTH2"] } });
    dir = await fs.mkdtemp(path.join(os.tmpdir(), "mailroom-gmail-"));
    const ca = path.join(dir, "peer-ca.pem");
    await fs.writeFile(ca, peer.ca);
    // The worker trusts the peer's CA as an operator trusts a private CA: TLS stays verified.
    oauth = await startHarness("sqlite", "google", {
      MAILROOM_EXTRA_CA_FILE: ca,
      MAILROOM_POLL_MS: "50",
      MAILROOM_SMTPS_PORT: "0",
    });
    h = await attachIntake(oauth.t);
  });
  afterAll(async () => {
    await h?.intake.stop();
    await oauth?.close();
    await peer?.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it("arrives at the peer over XOAUTH2 with the bytes the app sent", async () => {
    const serverId = await oauth.createServer("Workspace", { host: "localhost", port: peer.port, security: "starttls" });
    expect(outcomeOf(await oauth.connect(serverId)).oauth).toBe("success");
    peer.setAuth({ user: FROM, methods: ["XOAUTH2"], accessToken: [...oauth.issuer.issued] });
    const token = await h.token("legacy-erp", { serverIds: [serverId] });
    oauth.t.mailroom.worker.start();

    const raw = Buffer.from(SIGNED_INVITE.toString("utf8").replace("sender@example.com", FROM));
    const mailer = createTransport({
      host: "localhost",
      port: h.port,
      requireTLS: true,
      tls: { ca: h.ca },
      auth: { user: "erp", pass: token },
    });
    const info = await mailer.sendMail({
      raw,
      envelope: { from: FROM, to: ["rcpt@example.org", "hidden@example.org"] },
    } as SendMailOptions);
    mailer.close();
    const id = /queued as (\S+)/.exec(info.response)?.[1] as string;

    const [got] = await peer.waitForMessages(1);
    expect(got.user).toBe(FROM);
    expect(got.secure).toBe(true);
    expect(got.raw.equals(raw)).toBe(true);
    expect(got.envelope.to).toEqual(["rcpt@example.org", "hidden@example.org"]);
    expect(peer.authAttempts.at(-1)).toMatchObject({ method: "XOAUTH2", ok: true });
    const sent = await waitFor("the message to be recorded as sent", async () => {
      const m = await oauth.t.mailroom.messages.get(id);
      return m.status === "sent" ? m : null;
    });
    expect(sent).toMatchObject({
      server: { name: "Workspace" },
      source: { kind: "smtp", by: "token legacy-erp", username: "erp" },
    });
    await oauth.expectNoLeaks([token]);
  });
});
