/**
 * What the failure drills share: a Mailroom database prepared by the test (servers,
 * queued messages), Mailroom itself as a real process on it, and the counts every drill
 * reports: sent, arrived unique, duplicates, lost.
 */
import { bootstrap, createMailroom, type Mailroom } from "../../src/app.js";
import type { Principal } from "../../src/auth/permissions.js";
import type { Config } from "../../src/config.js";
import type { MessageInput } from "../../src/core/message-input.js";
import type { MessageStatus } from "../../src/storage/schema.js";
import { freshConfig } from "./databases.js";
import { type MailroomProcess, spawnMailroom } from "./process.js";

export const drillSender: Principal = {
  kind: "user",
  id: "drill",
  label: "drill",
  email: null,
  superAdmin: true,
  permissions: new Set(),
  serverIds: null,
  userId: null,
};

export const DRILL_ADMIN = { email: "drill-admin@example.com", password: "drill admin password" };

export interface Drill {
  config: Config;
  /** The test's own handle on the database: never started, so it neither delivers nor probes. */
  db: Mailroom;
  /** Starts `mailroom serve` on the database with these variables added. */
  spawn(env?: Record<string, string>): Promise<MailroomProcess>;
  queue(inputs: MessageInput[]): Promise<string[]>;
  /** How many of these messages are in each status. */
  statuses(ids: string[]): Promise<Record<string, number>>;
  close(): Promise<void>;
}

/** A fresh SQLite database with the first admin and the Capture server; `env` for the processes. */
export async function startDrill(env: Record<string, string>): Promise<Drill> {
  const { config, drop } = await freshConfig("sqlite", {
    MAILROOM_ADMIN_EMAIL: DRILL_ADMIN.email,
    MAILROOM_ADMIN_PASSWORD: DRILL_ADMIN.password,
  });
  const db = createMailroom(config);
  await bootstrap(db);
  const processes: MailroomProcess[] = [];
  return {
    config,
    db,
    async spawn(extra = {}) {
      const child = await spawnMailroom({ MAILROOM_DATA_DIR: config.dataDir, ...env, ...extra });
      processes.push(child);
      return child;
    },
    async queue(inputs) {
      const out: string[] = [];
      for (let i = 0; i < inputs.length; i += 1000) {
        const queued = await db.messages.enqueueBatch(inputs.slice(i, i + 1000), drillSender);
        out.push(...queued.map((q) => q.id));
      }
      return out;
    },
    async statuses(ids) {
      const rows = await db.ctx.db.selectFrom("messages").select(["id", "status"]).where("id", "in", ids).execute();
      const counts: Record<string, number> = {};
      for (const r of rows) counts[r.status] = (counts[r.status] ?? 0) + 1;
      return counts;
    },
    async close() {
      for (const p of processes) {
        if (p.child.exitCode === null && p.child.signalCode === null) {
          p.child.kill("SIGKILL");
          await p.exited;
        }
      }
      await db.close();
      await drop();
    },
  };
}

export interface DeliveryCounts {
  /** Messages Mailroom records as sent. */
  sent: number;
  /** Distinct messages the peer received. */
  arrivedUnique: number;
  /** Messages the peer received more than once. */
  duplicates: number;
  /** Messages that never arrived. */
  lost: number;
}

/** Counts by Message-ID: what Mailroom recorded against what the peer received. */
export async function countDeliveries(drill: Drill, ids: string[], received: { messageId?: string }[]): Promise<DeliveryCounts> {
  const rows = await drill.db.ctx.db.selectFrom("messages").select(["message_id", "status"]).where("id", "in", ids).execute();
  const arrivals = new Map<string, number>();
  for (const m of received) {
    const id = (m.messageId ?? "").replace(/^<|>$/g, "");
    arrivals.set(id, (arrivals.get(id) ?? 0) + 1);
  }
  const ours = rows.map((r) => arrivals.get(r.message_id) ?? 0);
  return {
    sent: rows.filter((r) => r.status === ("sent" satisfies MessageStatus)).length,
    arrivedUnique: ours.filter((n) => n > 0).length,
    duplicates: ours.filter((n) => n > 1).length,
    lost: ours.filter((n) => n === 0).length,
  };
}

/** Signs in to a running process as the drill's admin: headers for its API. */
export async function signIn(url: string): Promise<Record<string, string>> {
  const res = await fetch(`${url}/api/auth/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(DRILL_ADMIN),
  });
  if (res.status !== 200) throw new Error(`sign-in failed: ${res.status} ${await res.text()}`);
  const cookie = (res.headers.get("set-cookie") ?? "").split(";")[0];
  const { csrfToken } = (await res.json()) as { csrfToken: string };
  return { cookie, "x-csrf-token": csrfToken, "content-type": "application/json" };
}
