/**
 * Drill: the disk under the data folder fills up while a `mailroom serve` process (SQLite)
 * accepts and delivers a steady stream of messages. The data folder is a small tmpfs mounted
 * for the test (root only; elsewhere the drill is skipped with the reason printed). The API
 * must answer 507 storage_full naming the folder to free, never 500; /readyz 503 until a
 * write succeeds again; and once space is freed, everything accepted goes out.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir } from "../helpers/databases.js";
import { type MailroomProcess, spawnMailroom } from "../helpers/process.js";
import { allArrived, countArrivals, prepareDatabase, readiness, Submitter } from "../helpers/storage-drill.js";
import { waitFor } from "../helpers/wait.js";
import { type SmtpPeer, startSmtpPeer } from "../peers/smtp-peer.js";

/** Mounts a tmpfs of `size` on a new folder; returns the folder, or why it cannot be done here. */
function mountTmpfs(size: string): { dir: string } | { reason: string } {
  if (process.platform !== "linux") return { reason: "a tmpfs can only be mounted on Linux" };
  if (process.getuid?.() !== 0) return { reason: "mounting a tmpfs needs root" };
  const dir = tempDir("mailroom-full-");
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size},mode=0700`, "tmpfs", dir], { stdio: "pipe" });
    return { dir };
  } catch (error) {
    fs.rmSync(dir, { recursive: true, force: true });
    return { reason: `mount -t tmpfs was refused (${String((error as { stderr?: Buffer }).stderr ?? error).trim()})` };
  }
}

function unmount(dir: string): void {
  execFileSync("umount", [dir]);
  fs.rmSync(dir, { recursive: true, force: true });
}

/** Why the drill cannot run here, found by a trial mount (undone at once), or null. */
function unavailableReason(): string | null {
  const trial = mountTmpfs("1m");
  if ("reason" in trial) return trial.reason;
  unmount(trial.dir);
  return null;
}

/** Writes `file` until the disk has no byte left. */
function fillDisk(file: string): void {
  const fd = fs.openSync(file, "w");
  try {
    for (const size of [1 << 20, 1 << 12, 1]) {
      const chunk = Buffer.alloc(size);
      try {
        for (;;) fs.writeSync(fd, chunk);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOSPC") throw error;
      }
    }
  } finally {
    fs.closeSync(fd);
  }
}

const unavailable = unavailableReason();
if (unavailable) console.warn(`[skip] storage-full drill skipped: ${unavailable}.`);

describe.skipIf(unavailable !== null)("the disk under the data folder fills up", () => {
  let root = "";
  let dataDir: string;
  let filler: string;
  let peer: SmtpPeer;
  let mailroom: MailroomProcess;
  let token: string;

  beforeAll(async () => {
    const disk = mountTmpfs("16m");
    if ("reason" in disk) throw new Error(disk.reason);
    root = disk.dir;
    dataDir = path.join(root, "data");
    filler = path.join(root, "filler");
    peer = await startSmtpPeer({ security: "none" });
    const env = { MAILROOM_DATA_DIR: dataDir };
    token = await prepareDatabase(env, peer);
    mailroom = await spawnMailroom({
      ...env,
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
    if (root) unmount(root);
  });

  it("answers 507 storage_full and /readyz 503 while full, loses nothing, and recovers once space is freed", async () => {
    const submitter = new Submitter(mailroom.url, token, "full drill", 500);
    await waitFor("deliveries under way", async () => peer.received.length >= 50);

    fillDisk(filler);
    await waitFor("the API to answer storage_full", async () => submitter.refused("storage_full") > 0);
    const refusal = submitter.refusals.find((r) => r.code === "storage_full");
    expect(refusal).toMatchObject({ status: 507, message: expect.stringContaining(`free disk space in ${dataDir}`) });
    const down = await readiness(mailroom.url);
    expect(down).toMatchObject({ status: 503, body: { status: "not_ready", code: "storage_full" } });
    expect(mailroom.child.exitCode).toBeNull();

    fs.rmSync(filler);
    await waitFor("/readyz to answer 200 again", async () => (await readiness(mailroom.url)).status === 200);
    const acceptedBefore = submitter.accepted.length;
    await waitFor("messages accepted again", async () => submitter.accepted.length >= acceptedBefore + 50, 30_000);
    await submitter.stop();
    await allArrived(submitter.accepted, peer);

    const count = countArrivals(submitter.accepted, peer);
    const refusedWith = [...new Set(submitter.refusals.map((r) => `${r.status} ${r.code}`))];
    console.log(
      `storage-full drill: sent ${count.sent}, arrived unique ${count.unique}, duplicates ${count.duplicates}, lost ${count.lost}; ${submitter.refusals.length} batches refused (${refusedWith.join(", ")})`,
    );
    expect(mailroom.child.exitCode).toBeNull();
    expect(count.lost).toBe(0);
    // A result that could not be written for want of space is kept until it can be.
    expect(count.duplicates).toBe(0);
    expect(refusedWith).toEqual(["507 storage_full"]);
    const output = mailroom.output();
    expect(output).not.toMatch(/cannot rollback/);
    expect(output.match(/the database's disk is full/g)).toHaveLength(1);
    expect(output.match(/the database can write again/g)).toHaveLength(1);
  }, 120_000);
});
