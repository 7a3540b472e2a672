/**
 * Drill: PostgreSQL restarted in the middle of delivery. A private cluster (never the shared
 * server) is stopped with `pg_ctl stop -m fast` (every session ends with 57P01, as in a
 * restart) while a `mailroom serve` process accepts and delivers a steady stream of
 * messages, then started again. The process must stay up, answer 503 storage_unavailable
 * and /readyz 503 while the database is down, log the outage once, and come back by itself:
 * /readyz 200, new messages accepted, every accepted message delivered.
 */
import { randomBytes } from "node:crypto";
import { Writable } from "node:stream";
import { sql } from "kysely";
import pg from "pg";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMailroom } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import { tempDir } from "../helpers/databases.js";
import { type PrivateCluster, privateClusterUnavailableReason, startPrivateCluster } from "../helpers/private-postgres.js";
import { type MailroomProcess, spawnMailroom } from "../helpers/process.js";
import { allArrived, countArrivals, prepareDatabase, readiness, Submitter } from "../helpers/storage-drill.js";
import { waitFor } from "../helpers/wait.js";
import { type SmtpPeer, startSmtpPeer } from "../peers/smtp-peer.js";

const unavailable = privateClusterUnavailableReason();
if (unavailable && process.env.CI) throw new Error(`CI needs a private PostgreSQL cluster: ${unavailable}`);
if (unavailable) console.warn(`[skip] PostgreSQL restart drill skipped: ${unavailable}.`);

describe.skipIf(unavailable !== null)("PostgreSQL restarted mid-delivery", () => {
  let cluster: PrivateCluster;
  let peer: SmtpPeer;
  let mailroom: MailroomProcess;
  let token: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    cluster = await startPrivateCluster();
    const admin = new pg.Client({ connectionString: cluster.url() });
    await admin.connect();
    await admin.query("create database mailroom");
    await admin.end();
    peer = await startSmtpPeer({ security: "none" });
    env = {
      DATABASE_URL: cluster.url("mailroom"),
      MAILROOM_DATA_DIR: tempDir(),
      MAILROOM_SECRET_KEY: randomBytes(32).toString("base64"),
    };
    token = await prepareDatabase(env, peer);
    mailroom = await spawnMailroom({
      ...env,
      // info: the outage's end is logged at info.
      MAILROOM_LOG_LEVEL: "info",
      MAILROOM_POLL_MS: "50",
      MAILROOM_LEASE_SECONDS: "5",
      MAILROOM_WORKER_CONCURRENCY: "8",
    });
  });
  afterAll(async () => {
    if (mailroom && mailroom.child.exitCode === null) {
      mailroom.child.kill("SIGTERM");
      await mailroom.exited;
    }
    await peer?.close();
    cluster?.destroy();
  });

  it("stays up, answers 503 while it is down, comes back by itself and loses nothing", async () => {
    expect(await readiness(mailroom.url)).toMatchObject({ status: 200, body: { status: "ready" } });
    const submitter = new Submitter(mailroom.url, token, "pg drill", 1000);
    await waitFor("deliveries under way", async () => peer.received.length >= 100);
    // Mid-delivery: most of the backlog is still to go.
    expect(submitter.accepted.length - peer.received.length).toBeGreaterThan(300);

    cluster.stop("fast");
    const down = await waitFor("/readyz to answer 503", async () => {
      const ready = await readiness(mailroom.url);
      return ready.status === 503 ? ready : null;
    });
    expect(down.body).toMatchObject({ status: "not_ready", code: "storage_unavailable" });
    await waitFor("the API to answer 503 storage_unavailable", async () => submitter.refused("storage_unavailable") > 0);
    expect(mailroom.child.exitCode).toBeNull();

    const acceptedBeforeStart = submitter.accepted.length;
    cluster.start();
    await waitFor("/readyz to answer 200 again", async () => (await readiness(mailroom.url)).status === 200, 30_000);
    await waitFor("messages accepted again", async () => submitter.accepted.length >= acceptedBeforeStart + 50, 30_000);
    await submitter.stop();
    await allArrived(submitter.accepted, peer);

    const count = countArrivals(submitter.accepted, peer);
    const refusedWith = [...new Set(submitter.refusals.map((r) => `${r.status} ${r.code}`))];
    console.log(
      `PostgreSQL restart drill: sent ${count.sent}, arrived unique ${count.unique}, duplicates ${count.duplicates}, lost ${count.lost}; ${submitter.refusals.length} batches refused (${refusedWith.join(", ")})`,
    );
    expect(mailroom.child.exitCode).toBeNull();
    expect(count.lost).toBe(0);
    // A result that could not be written while the database was down is kept and written
    // once it is back: nothing is sent twice.
    expect(count.duplicates).toBe(0);
    // Every refusal while it was down said so, with the stable code; no 500.
    expect(refusedWith).toEqual(["503 storage_unavailable"]);
    expect(submitter.refusals.every((r) => /retry in a few seconds/.test(r.message))).toBe(true);

    const output = mailroom.output();
    expect(output).not.toMatch(/Unhandled 'error' event|uncaught/i);
    // Logged once when the outage began, once when it ended; not once per failed query.
    expect(output.match(/the database cannot be reached/g)).toHaveLength(1);
    expect(output.match(/the database answers again/g)).toHaveLength(1);
  }, 120_000);

  it("a connection a transaction holds between two queries when the database goes away does not end the process", async () => {
    const lines: string[] = [];
    const log = pino({ level: "info" }, new Writable({ write: (chunk, _enc, done) => done(void lines.push(String(chunk))) }));
    const inProcess = createMailroom(loadConfig({ ...env, MAILROOM_DATA_DIR: tempDir() }), log);
    const { db, storage } = inProcess.ctx;
    try {
      const failure = await db
        .transaction()
        .execute(async (trx) => {
          await sql`select 1`.execute(trx);
          // Checked out, between two queries: the 57P01 and the end of the connection
          // arrive with no query to fail. pg then emits 'error' on the client, which ends
          // the process unless someone listens.
          cluster.stop("fast");
          await waitFor("the dropped connection to be noticed", async () => storage.health.current !== null);
          await sql`select 1`.execute(trx);
        })
        .then(
          () => null,
          (error: unknown) => error,
        );
      expect(storage.health.failed(failure)?.code).toBe("storage_unavailable");
      expect((await storage.health.probe(db))?.code).toBe("storage_unavailable");
      cluster.start();
      expect(await storage.health.probe(db)).toBeNull();
      expect(storage.health.current).toBeNull();
      const logged = lines.join("");
      expect(logged.match(/the database cannot be reached/g)).toHaveLength(1);
      expect(logged.match(/the database answers again/g)).toHaveLength(1);
    } finally {
      await inProcess.close();
    }
  });
});
