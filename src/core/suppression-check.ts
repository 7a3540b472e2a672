/**
 * The accept-time check of the suppression list (the list itself lives in src/events, which
 * MessageService reaches only through the lookup wired in src/app.ts).
 */
import { MailroomError } from "../kernel/errors.js";
import type { Address } from "../kernel/transport.js";
import type { MessagesTable } from "../storage/schema.js";

/** An entry of the suppression list (src/events/suppressions.ts) that refuses an address. */
export interface SuppressedAddress {
  id: string;
  /** Lower case. */
  address: string;
  /** null: for every server. */
  serverId: string | null;
  reason: string;
  createdAt: number;
}

/** The entries for any of `addresses` (lower case) that apply to any of `serverIds` or to every server. */
export type SuppressionLookup = (addresses: string[], serverIds: string[]) => Promise<SuppressedAddress[]>;

/** A message about to be stored: its row, its idempotency key, where its fields are in the request. */
export interface SuppressionCandidate {
  row: MessagesTable;
  key?: string;
  /** "messages[3]." in a batch. */
  prefix?: string;
}

/** [field, lower-cased address] of every recipient. */
function recipientsOf(row: MessagesTable): (readonly ["to" | "cc" | "bcc", string])[] {
  const r = JSON.parse(row.recipients) as { to: Address[]; cc: Address[]; bcc: Address[] };
  return (["to", "cc", "bcc"] as const).flatMap((field) => r[field].map((a) => [field, a.address.toLowerCase()] as const));
}

function serversOf(row: MessagesTable): string[] {
  return row.route_servers ? (JSON.parse(row.route_servers) as string[]) : [row.server_id];
}

/**
 * Refuses (recipient_suppressed) the first message with a to, cc or bcc address on the list
 * for a server it may go through (its own, a route's others) or for every server: one look-up
 * for a whole batch. A message repeating an idempotency key still in use passes: its first
 * message is what the caller gets (`keyInUse` says).
 */
export async function refuseSuppressed(
  lookup: SuppressionLookup,
  candidates: SuppressionCandidate[],
  keyInUse: (key: string) => Promise<boolean>,
): Promise<void> {
  const addresses = new Set(candidates.flatMap((c) => recipientsOf(c.row).map(([, address]) => address)));
  const servers = new Set(candidates.flatMap((c) => serversOf(c.row)));
  const found = await lookup([...addresses], [...servers]);
  if (found.length === 0) return;
  for (const { row, key, prefix = "" } of candidates) {
    const mine = new Set(serversOf(row));
    const recipients = recipientsOf(row);
    const hit = found.find((s) => recipients.some(([, a]) => a === s.address) && (s.serverId === null || mine.has(s.serverId)));
    if (!hit || (key && (await keyInUse(key)))) continue;
    const field = recipients.find(([, a]) => a === hit.address)?.[0] ?? "to";
    const where =
      hit.serverId === null
        ? "for every server"
        : hit.serverId === row.server_id
          ? `for '${row.server_name}'`
          : "for a server of its route";
    const since = new Date(Number(hit.createdAt)).toISOString().slice(0, 10);
    throw new MailroomError(
      "recipient_suppressed",
      `${hit.address} is on the suppression list ${where} (${hit.reason.replace("_", " ")} on ${since}): remove it from the message, or remove the entry under Suppressions (DELETE /api/suppressions/${hit.id}) if the address can receive mail again.`,
      { field: `${prefix}${field}`, address: hit.address, suppressionId: hit.id, reason: hit.reason },
    );
  }
}
