/**
 * Erasure on request: every stored trace of one recipient's mail goes (bodies, raw MIME,
 * captured copies, the providers' replies), while the delivery log keeps its rows, with the
 * address replaced by a keyed hash, so counts and the audit trail stay true. docs/operations.md
 * (Erasure) says what is matched and what is kept.
 */
import { type Kysely, sql } from "kysely";
import { findDriver } from "../drivers/registry.js";
import { MailroomError } from "../kernel/errors.js";
import type { Address } from "../kernel/transport.js";
import { hasControlCharacters, isEmailAddress } from "../kernel/validate.js";
import { writeFromTheStart } from "../storage/dialect.js";
import type { Database, MessageStatus } from "../storage/schema.js";
import { scrubFreedSpace } from "../storage/scrub.js";
import { type Actor, writeAudit } from "./audit.js";
import type { AppContext } from "./context.js";

/** What an erasure removed. */
export interface ErasureReport {
  /** HMAC-SHA256 of the address under a key derived from the secret key: `<keyId>:<hex>`. */
  addressHash: string;
  /** What the address became in the rows that are kept. */
  replacement: string;
  /** Messages that named the address (to, cc, bcc or reply-to): their bodies are gone. */
  messages: number;
  /** Of those, the ones not sent yet: now failed with message_erased, never to be sent. */
  cancelled: number;
  /** Raw MIME copies (SMTP submission) deleted. */
  rawCopies: number;
  /** Delivery attempts whose provider reply was cleared. */
  attempts: number;
  /** Captured copies (Capture servers' files) deleted. */
  capturedCopies: number;
  /** Earlier audit entries in which the address was replaced. */
  auditEntries: number;
  /**
   * SQLite: the write-ahead log, which still holds the pages as they were, was emptied at once
   * (else at the next checkpoint). The file itself holds no old bytes: secure_delete (scrub.ts).
   */
  walEmptied: boolean;
}

/** The erased form of a payload: no text, html, headers or attachments. */
const ERASED_PAYLOAD = JSON.stringify({ erased: true, headers: {}, attachments: [] });
const UNSENT: MessageStatus[] = ["queued", "sending", "held"];
const CHUNK = 100;
const HASH_PURPOSE = "address erasure";

/** The address as given, checked: one address, no line break, at most 254 characters. */
export function checkErasureAddress(address: string): string {
  if (hasControlCharacters(address)) {
    throw new MailroomError("control_characters", "address: contains a control character (CR, LF, NUL…); remove it.", [
      { field: "address", message: "contains a control character" },
    ]);
  }
  if (address.length > 254) {
    throw new MailroomError("invalid_address", `address: at most 254 characters (this one has ${address.length}).`, [
      { field: "address", message: "longer than 254 characters" },
    ]);
  }
  if (!isEmailAddress(address)) {
    throw new MailroomError("invalid_address", "address: give one bare address, like name@example.com (no name, no brackets).", [
      { field: "address", message: "not an email address" },
    ]);
  }
  return address;
}

/** A LIKE pattern that finds `text` anywhere, its own %, _ and \ taken literally. */
function containing(text: string): string {
  return `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Removes every stored trace of mail to `address`; see ErasureReport for what is counted. */
export async function eraseRecipientData(
  ctx: AppContext,
  rawAddress: string,
  actor: Actor,
  options: { rebuild?: boolean } = {},
): Promise<ErasureReport> {
  const address = checkErasureAddress(rawAddress).toLowerCase();
  const addressHash = ctx.secrets.keyedHash(HASH_PURPOSE, address);
  const replacement = `erased-${addressHash.split(":")[1].slice(0, 16)}@erased.invalid`;
  const anyCase = new RegExp(escapeRegExp(address), "gi");
  const scrubText = (text: string | null) => (text === null ? null : text.replace(anyCase, replacement));
  // As stored in the recipients JSON (a quoted local part's " and \ are escaped there).
  const pattern = containing(JSON.stringify(address).slice(1, -1));
  const counts = { messages: 0, cancelled: 0, rawCopies: 0, attempts: 0, capturedCopies: 0, auditEntries: 0 };
  const erasedIds = new Set<string>();

  const candidates = await ctx.db
    .selectFrom("messages")
    .select(["id", "recipients"])
    .where(sql<boolean>`lower(recipients) like ${pattern} escape '\\'`)
    .execute();
  const named = candidates.filter(({ recipients }) =>
    Object.values(JSON.parse(recipients) as Record<string, Address[]>).some((list) =>
      list.some((a) => a.address.toLowerCase() === address),
    ),
  );
  // Small transactions: delivery goes on between them. Run again, an erasure finds nothing new.
  for (let i = 0; i < named.length; i += CHUNK) {
    await ctx.db.transaction().execute(async (trx) => {
      await writeFromTheStart(trx);
      for (const { id } of named.slice(i, i + CHUNK)) await eraseMessage(trx, id);
    });
  }
  await ctx.db.transaction().execute(async (trx) => {
    await writeFromTheStart(trx);
    const audit = await trx
      .selectFrom("audit_log")
      .select(["id", "before", "after"])
      .where((eb) =>
        eb.or([
          sql<boolean>`lower(${eb.ref("before")}) like ${pattern} escape '\\'`,
          sql<boolean>`lower(${eb.ref("after")}) like ${pattern} escape '\\'`,
        ]),
      )
      .execute();
    for (const row of audit) {
      await trx
        .updateTable("audit_log")
        .set({ before: scrubText(row.before), after: scrubText(row.after) })
        .where("id", "=", row.id)
        .execute();
    }
    counts.auditEntries = audit.length;
    // Failed sign-ins are counted per typed address: that key names it too.
    await trx.deleteFrom("auth_failures").where("key", "=", `account:${address}`).execute();
  });

  async function eraseMessage(trx: Kysely<Database>, id: string): Promise<void> {
    const row = await trx.selectFrom("messages").selectAll().where("id", "=", id).executeTakeFirst();
    if (!row) return;
    const recipients = JSON.parse(row.recipients) as Record<"to" | "cc" | "bcc" | "replyTo", Address[]>;
    const kept = Object.fromEntries(
      Object.entries(recipients).map(([field, list]) => [
        field,
        list.map((a) => (a.address.toLowerCase() === address ? { address: replacement } : a)),
      ]),
    ) as typeof recipients;
    const unsent = UNSENT.includes(row.status);
    await trx
      .updateTable("messages")
      .set({
        recipients: JSON.stringify(kept),
        recipient_search: [...kept.to, ...kept.cc, ...kept.bcc].map((a) => a.address.toLowerCase()).join(" "),
        // The subject is the message's content ("Your invoice, Jane"), not its delivery facts.
        subject: "",
        payload: ERASED_PAYLOAD,
        updated_at: Date.now(),
        ...(unsent
          ? {
              status: "failed" as const,
              lease_owner: null,
              last_error_code: "message_erased",
              last_error: "Erased on request before it was sent; it will not be sent.",
            }
          : { last_error: scrubText(row.last_error) }),
      })
      .where("id", "=", id)
      .execute();
    const raw = await trx.deleteFrom("message_raw").where("message_id", "=", id).executeTakeFirst();
    // The provider's reply may quote the address or the message; the outcome and codes stay.
    const attempts = await trx
      .selectFrom("message_attempts")
      .select(["id", "remote_command"])
      .where("message_id", "=", id)
      .execute();
    for (const attempt of attempts) {
      await trx
        .updateTable("message_attempts")
        .set({ remote_response: null, remote_command: scrubText(attempt.remote_command) })
        .where("id", "=", attempt.id)
        .execute();
    }
    // The providers' reports name the address and may quote it in their diagnostic.
    // (The suppression list keeps the address: it is what stops mail to it; see docs/events.md.)
    const events = await trx
      .selectFrom("message_events")
      .select(["id", "recipient", "diagnostic"])
      .where("message_id", "=", id)
      .execute();
    for (const event of events) {
      await trx
        .updateTable("message_events")
        .set({
          recipient: event.recipient?.toLowerCase() === address ? replacement : event.recipient,
          diagnostic: scrubText(event.diagnostic),
        })
        .where("id", "=", event.id)
        .execute();
    }
    // Webhook events about it may quote the address (a provider's error, a bounce's diagnostic),
    // and a receiver's answer anything: the bodies are scrubbed, the answers cleared.
    const deliveries = await trx
      .selectFrom("webhook_deliveries")
      .select(["id", "payload"])
      .where("message_id", "=", id)
      .execute();
    for (const event of deliveries) {
      const scrubbed = scrubText(event.payload) as string;
      if (scrubbed !== event.payload)
        await trx.updateTable("webhook_deliveries").set({ payload: scrubbed }).where("id", "=", event.id).execute();
    }
    if (deliveries.length) {
      await trx
        .updateTable("webhook_attempts")
        .set({ response_excerpt: null })
        .where(
          "delivery_id",
          "in",
          deliveries.map((e) => e.id),
        )
        .execute();
    }
    // Never to be sent: applications hear it failed (with message_erased), in this transaction.
    if (unsent) {
      await ctx.messageEvents.record(trx, [{ type: "failed", messageId: id, serverId: row.server_id, at: ctx.clock() }]);
    }
    counts.messages++;
    if (unsent) counts.cancelled++;
    counts.rawCopies += Number(raw.numDeletedRows);
    counts.attempts += attempts.length;
    erasedIds.add(id);
  }

  // Captured copies live beside the database, one folder per server of a driver that keeps mail.
  const servers = await ctx.db.selectFrom("email_servers").select(["id", "driver"]).execute();
  for (const server of servers) {
    const eraseCopies = findDriver(server.driver)?.eraseAddress;
    if (!eraseCopies) continue;
    counts.capturedCopies += await eraseCopies({
      dataDir: ctx.config.dataDir,
      serverId: server.id,
      address,
      messageIds: erasedIds,
    });
  }

  await writeAudit(ctx.db, actor, {
    action: "recipient.erase",
    targetType: "recipient",
    targetId: addressHash,
    after: { ...counts },
  });
  const { walEmptied, rebuilt } = await scrubFreedSpace(ctx.storage, options);
  ctx.log.info({ addressHash, ...counts, walEmptied, rebuilt }, "recipient data erased");
  return { addressHash, replacement, ...counts, walEmptied };
}

/** Whether an earlier erasure's `addressHash` (from the audit log) was made for `address`. */
export function matchesErasedAddress(ctx: AppContext, addressHash: string, address: string): boolean {
  const keyId = addressHash.split(":")[0];
  if (!ctx.secrets.keys.some((k) => k.id === keyId)) return false;
  return ctx.secrets.keyedHash(HASH_PURPOSE, address.toLowerCase(), keyId) === addressHash;
}
