import type { Kysely } from "kysely";
import type { Logger } from "pino";
import type { Config } from "../config.js";
import type { Clock } from "../kernel/clock.js";
import type { Storage } from "../storage/db.js";
import type { GroupCommit } from "../storage/group-commit.js";
import type { Database } from "../storage/schema.js";
import type { SecretBox } from "../storage/secrets.js";
import type { MessageEventSink } from "./message-events.js";

/** What every service needs; built once at start (src/app.ts) and passed down. */
export interface AppContext {
  config: Config;
  storage: Storage;
  db: Kysely<Database>;
  secrets: SecretBox;
  log: Logger;
  /** Shares one transaction among small concurrent writes (accepted messages, delivery results). */
  commits: GroupCommit;
  /** The time every time decision reads (OAuth, tokens, rate limits, retries, breakers): tests move it. */
  clock: Clock;
  /** Told of every message status change (application webhooks listen); see message-events.ts. */
  messageEvents: MessageEventSink;
}
