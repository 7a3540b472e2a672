/**
 * Retention of the copies drivers keep outside the database (the Capture driver's files in the
 * data folder). A copy follows its message's tiers: it loses its body once the message did
 * (body_purged_at, dated the same), and goes once the message itself has gone after the
 * metadata period. A copy whose message is queued, sending or held is never touched; one whose
 * message this database never had (or lost otherwise) follows the periods by its own age.
 *
 * Part of a purge, under its lease: processes sharing a data folder take turns like the rest,
 * and each process sees the folder of its own data directory. Every step is idempotent: a copy
 * already trimmed or gone is skipped, so a purge stopped halfway is finished by the next.
 */
import { findDriver } from "../drivers/registry.js";
import type { KeptCopies, KeptCopy } from "../drivers/types.js";
import { FINISHED_STATUSES } from "../storage/schema.js";
import type { AppContext } from "./context.js";

export interface CopyPurge {
  /** Copies made before this (ms) have passed the body period; null: bodies are kept. */
  bodyBefore: number | null;
  /** Copies made before this have passed the metadata period; null: messages are kept. */
  metadataBefore: number | null;
  now: number;
  batchSize: number;
  /** Called between batches: renews the lease (throws when it is lost) and lets delivery in. */
  between(): Promise<void>;
  stopped(): boolean;
}

const FINISHED = new Set<string>(FINISHED_STATUSES);

/** Trims and removes the copies of every server whose driver keeps some; returns how many changed. */
export async function purgeKeptCopies(ctx: AppContext, purge: CopyPurge): Promise<number> {
  if (purge.bodyBefore === null && purge.metadataBefore === null) return 0;
  let changed = 0;
  const servers = await ctx.db.selectFrom("email_servers").select(["id", "driver"]).execute();
  for (const server of servers) {
    const kept = findDriver(server.driver)?.keptCopies;
    if (!kept || purge.stopped()) continue;
    changed += await purgeServerCopies(ctx, kept, { dataDir: ctx.config.dataDir, serverId: server.id }, purge);
  }
  return changed;
}

async function purgeServerCopies(
  ctx: AppContext,
  kept: KeptCopies,
  where: { dataDir: string; serverId: string },
  purge: CopyPurge,
): Promise<number> {
  const { bodyBefore, metadataBefore } = purge;
  // Only copies old enough to be due: a copy is written before its message is marked sent, so
  // a message past a period has its copy older than the period's start too.
  const due = (await kept.list(where)).filter(
    (c) =>
      (metadataBefore !== null && c.keptAt < metadataBefore) || (bodyBefore !== null && !c.bodyRemoved && c.keptAt < bodyBefore),
  );
  let changed = 0;
  for (let i = 0; i < due.length && !purge.stopped(); i += purge.batchSize) {
    if (i > 0) await purge.between();
    const batch = due.slice(i, i + purge.batchSize);
    const messages = await ctx.db
      .selectFrom("messages")
      .select(["id", "status", "body_purged_at"])
      .where(
        "id",
        "in",
        batch.map((c) => c.messageId),
      )
      .execute();
    const byId = new Map(messages.map((m) => [m.id, m]));
    for (const copy of batch) {
      const action = decide(copy, byId.get(copy.messageId), purge);
      if (action === "remove" && (await kept.remove(where, copy.id))) changed++;
      else if (typeof action === "number" && (await kept.removeBody(where, copy.id, action))) changed++;
    }
  }
  return changed;
}

/** What happens to one due copy: "remove", remove its body dated the number returned, or "keep". */
function decide(
  copy: KeptCopy,
  message: { status: string; body_purged_at?: number | null } | undefined,
  { bodyBefore, metadataBefore, now }: CopyPurge,
): "remove" | "keep" | number {
  if (message) {
    // Queued, sending and held mail is never purged, nor its copy.
    if (!FINISHED.has(message.status)) return "keep";
    // The whole copy goes with its message; its body with the message's body.
    if (!copy.bodyRemoved && message.body_purged_at != null) return Number(message.body_purged_at);
    return "keep";
  }
  if (metadataBefore !== null && copy.keptAt < metadataBefore) return "remove";
  if (bodyBefore !== null && !copy.bodyRemoved && copy.keptAt < bodyBefore) return now;
  return "keep";
}
