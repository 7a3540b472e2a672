import type { Kysely } from "kysely";
import type { Database } from "../storage/schema.js";

/**
 * What can happen to a message that an application may want to hear about. The first five
 * are Mailroom's own status changes; the last three come from the provider afterwards
 * (src/events/provider-events): a delivery report, a bounce, a complaint.
 */
export type MessageEventType = "queued" | "sent" | "failed" | "held" | "delivered" | "bounced" | "complained";

export interface MessageEvent {
  type: MessageEventType;
  messageId: string;
  serverId: string;
  /** Epoch milliseconds (ctx.clock). */
  at: number;
  /** Never a secret: error code and message, bounce type and diagnostic, the provider's id. */
  detail?: Record<string, string | number | boolean | null>;
}

/**
 * Where status changes are told. `record` is called with the database handle (or the open
 * transaction) that made the change, so a durable listener (application webhooks) can store
 * its work in the same commit: a crash between the change and the event loses neither.
 * It must cost nothing measurable when no one listens.
 */
export interface MessageEventSink {
  record(db: Kysely<Database>, events: MessageEvent[]): Promise<void>;
  /**
   * Whether `record` may store anything for events of this type, answered from memory. False
   * lets a hot path skip the work of telling (on PostgreSQL, the transaction that would hold
   * the settle statement and the events together). Absent: assume it may.
   */
  listening?(type: MessageEventType): boolean;
}

/** Whether the sink may want events of this type (see MessageEventSink.listening). */
export function listensTo(sink: MessageEventSink, type: MessageEventType): boolean {
  return sink.listening?.(type) ?? true;
}

/** The sink until the events layer replaces it (src/app.ts). */
export const ignoreMessageEvents: MessageEventSink = {
  async record() {},
  listening: () => false,
};
