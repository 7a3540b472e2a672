/**
 * Stores what a verified webhook request reported, in one transaction per request: each new
 * event, the message's status, the suppression of a hard-bounced or complaining address, the
 * MessageEventSink's record (application webhooks), the source's counts, and a Mailgun token
 * (so a token is taken once, and only if its events were stored).
 *
 * Statuses only move forward: sent → delivered → bounced → complained. A delivery report
 * never undoes a hard bounce or a complaint, nor a soft bounce reported after it; it does
 * replace a soft bounce it comes after (the provider retried, and the retry got through).
 * Events are matched by the provider's message id among the messages of the server whose
 * endpoint was called; one for an unknown message is counted and answered 200, so the
 * provider stops sending it.
 */
import type { Kysely } from "kysely";
import type { AppContext } from "../../core/context.js";
import type { MessageEvent } from "../../core/message-events.js";
import { newId } from "../../kernel/ids.js";
import type { Database, EventProvider, MessageStatus } from "../../storage/schema.js";
import type { SuppressionService } from "../suppressions.js";
import type { ProviderReport } from "./report.js";
import type { EventSourceService } from "./sources.js";

export interface IngestResult {
  accepted: number;
  /** The same event again (a retry, a replay): stored once. */
  duplicates: number;
  /** For a message this server did not send (or retention removed). */
  unmatched: number;
  /** Events of a kind Mailroom does not keep (opens, clicks…). */
  ignored: number;
}

/** Thrown when a Mailgun token was used already: the request is a replay. */
export class ReplayedToken extends Error {}

const RANK: Partial<Record<MessageStatus, number>> = { sent: 0, delivered: 1, bounced: 2, complained: 3 };
const NONCE_MS = 15 * 60 * 1000;

export class ProviderEventIngest {
  private lastNoncePurge = 0;

  constructor(
    private readonly ctx: AppContext,
    private readonly sources: EventSourceService,
    private readonly suppressions: SuppressionService,
  ) {}

  async store(
    serverId: string,
    provider: EventProvider,
    reports: ProviderReport[],
    ignored: number,
    nonce?: string,
  ): Promise<IngestResult> {
    const now = this.ctx.clock();
    const scope = (await this.suppressions.settings()).scope;
    const result: IngestResult = { accepted: 0, duplicates: 0, unmatched: 0, ignored };
    try {
      await this.ctx.db.transaction().execute(async (trx) => {
        if (nonce) await trx.insertInto("provider_event_nonces").values({ key: nonce, seen_at: now }).execute();
        const told: MessageEvent[] = [];
        for (const report of reports) {
          const message = await trx
            .selectFrom("messages")
            .select(["id", "status"])
            .where("server_id", "=", serverId)
            .where("provider_message_id", "in", [report.providerMessageId, `<${report.providerMessageId}>`])
            .executeTakeFirst();
          if (!message) {
            result.unmatched++;
            continue;
          }
          const inserted = await trx
            .insertInto("message_events")
            .values({
              id: newId(),
              message_id: message.id,
              server_id: serverId,
              provider,
              type: report.type,
              bounce_kind: report.bounceKind,
              recipient: report.recipient,
              diagnostic: report.diagnostic,
              provider_event_id: report.providerEventId,
              at: report.at,
              received_at: now,
            })
            .onConflict((oc) => oc.columns(["server_id", "provider", "provider_event_id"]).doNothing())
            .executeTakeFirst();
          if (Number(inserted.numInsertedOrUpdatedRows ?? 0) === 0) {
            result.duplicates++;
            continue;
          }
          result.accepted++;
          const next = await this.nextStatus(trx, message.id, message.status, report);
          if (next) {
            await trx
              .updateTable("messages")
              .set({ status: next, updated_at: now })
              .where("id", "=", message.id)
              .where("status", "=", message.status)
              .execute();
          }
          const suppress = report.type === "complained" || (report.type === "bounced" && report.bounceKind === "hard");
          if (suppress && report.recipient) {
            await this.suppressions.addAutomatic(
              trx,
              {
                address: report.recipient,
                serverId,
                reason: report.type === "complained" ? "complaint" : "hard_bounce",
                detail: report.diagnostic,
                messageId: message.id,
              },
              scope,
              now,
            );
          }
          told.push({
            type: report.type,
            messageId: message.id,
            serverId,
            at: report.at,
            detail: {
              provider,
              recipient: report.recipient,
              bounceKind: report.bounceKind,
              diagnostic: report.diagnostic,
              providerEventId: report.providerEventId,
            },
          });
        }
        await this.sources.count(trx, serverId, provider, result.accepted, result.unmatched, now);
        if (told.length) await this.ctx.messageEvents.record(trx, told);
      });
    } catch (error) {
      if (nonce && isPrimaryKeyClash(error)) throw new ReplayedToken();
      throw error;
    }
    if (nonce) await this.purgeNonces(now);
    if (result.unmatched) {
      this.ctx.log.info(
        { serverId, provider, unmatched: result.unmatched },
        "provider events: events for messages this server did not send",
      );
    }
    return result;
  }

  /** The status a report moves the message to, or null to leave it. */
  private async nextStatus(
    trx: Kysely<Database>,
    messageId: string,
    current: MessageStatus,
    report: ProviderReport,
  ): Promise<MessageStatus | null> {
    const from = RANK[current];
    const to = RANK[report.type] as number;
    if (from === undefined) return null;
    if (to > from) return report.type;
    if (current !== "bounced" || report.type !== "delivered") return null;
    // A delivery after only soft bounces (each reported before it) means the retry got through.
    const blocking = await trx
      .selectFrom("message_events")
      .select("id")
      .where("message_id", "=", messageId)
      .where("type", "=", "bounced")
      .where((eb) => eb.or([eb("bounce_kind", "=", "hard"), eb("at", ">=", report.at)]))
      .executeTakeFirst();
    return blocking ? null : "delivered";
  }

  /** Forgets Mailgun tokens older than their 15 minutes, at most once a minute. */
  private async purgeNonces(now: number): Promise<void> {
    if (now - this.lastNoncePurge < 60_000) return;
    this.lastNoncePurge = now;
    await this.ctx.db
      .deleteFrom("provider_event_nonces")
      .where("seen_at", "<", now - NONCE_MS)
      .execute()
      .catch((error) => this.ctx.log.warn({ err: error }, "provider events: could not purge old Mailgun tokens"));
  }
}

/** A duplicate primary key, on either database (the nonce table's key is its primary key). */
function isPrimaryKeyClash(error: unknown): boolean {
  const e = error as { code?: unknown; constraint?: unknown } | null;
  return e?.code === "23505" || e?.code === "SQLITE_CONSTRAINT_PRIMARYKEY";
}
