import type { Kysely } from "kysely";
import { MailroomError } from "../kernel/errors.js";
import type { Database } from "../storage/schema.js";

/** How many failures a key gets free before each further attempt must wait. */
export interface ThrottleLimits {
  /** Per account (the email as typed, normalized): someone guessing one person's password. */
  perAccount: number;
  /** Per client address: someone trying many accounts from one place. */
  perAddress: number;
}

export const DEFAULT_THROTTLE_LIMITS: ThrottleLimits = { perAccount: 5, perAddress: 20 };

/** The longest wait: a stranger guessing an account never locks its owner out for longer. */
export const MAX_DELAY_MS = 15 * 60 * 1000;
/** A key's failures are forgotten this long after the last one. */
const FORGET_AFTER_MS = 24 * 60 * 60 * 1000;

/** After `free` failures, the n-th further failure makes the next attempt wait 2^n seconds, up to 15 minutes. */
export function delayAfter(failures: number, free: number): number {
  if (failures < free) return 0;
  return Math.min(2 ** (failures - free + 1) * 1000, MAX_DELAY_MS);
}

export interface ThrottleKey {
  key: string;
  free: number;
}

/** An attempt counted on one key, and what to restore if it was right. */
export interface CountedAttempt {
  key: string;
  blockedUntil: number;
  previousBlockedUntil: number;
}

/**
 * Slows password guessing: sign-in and password change. Every attempt is counted as a
 * failure before the password is checked (so parallel guesses are counted too) and taken
 * back if it was right: successes never count. Attempts while a key must wait are refused
 * without checking the password. Stored in the database, so every Mailroom process sharing
 * it shares the count.
 */
export class SignInThrottle {
  /** The clock: tests move it instead of sleeping. */
  now: () => number = Date.now;

  constructor(
    private readonly db: Kysely<Database>,
    readonly limits: ThrottleLimits = DEFAULT_THROTTLE_LIMITS,
  ) {}

  keys(email: string, address: string): ThrottleKey[] {
    return [
      { key: `account:${email.trim().toLowerCase()}`, free: this.limits.perAccount },
      { key: `ip:${address}`, free: this.limits.perAddress },
    ];
  }

  /**
   * Counts an attempt on every key, or throws too_many_attempts (with the seconds to wait)
   * when one of them must wait. Hand what it returns to settle() once the password is checked.
   */
  async begin(keys: ThrottleKey[]): Promise<CountedAttempt[]> {
    const counted: CountedAttempt[] = [];
    for (const key of keys) {
      const result = await this.count(key);
      if ("waitMs" in result) {
        // The keys already counted for this refused attempt are given back.
        await this.uncount(counted);
        const seconds = Math.ceil(result.waitMs / 1000);
        throw new MailroomError(
          "too_many_attempts",
          `Too many wrong passwords ${key.key.startsWith("ip:") ? "from your address" : "for this account"}: wait ${seconds} seconds and try again.`,
          { retryAfterSeconds: seconds },
        );
      }
      counted.push(result);
    }
    return counted;
  }

  /** After the password was checked: a right one takes its attempt back, and clears the account's failures. */
  async settle(counted: CountedAttempt[], succeeded: boolean): Promise<void> {
    if (!succeeded) return;
    const [account, ...others] = counted;
    await this.db.deleteFrom("auth_failures").where("key", "=", account.key).execute();
    await this.uncount(others);
  }

  /** Counts an attempt on the key, or says how long it must wait. */
  private async count({ key, free }: ThrottleKey): Promise<CountedAttempt | { waitMs: number }> {
    // Optimistic: a concurrent attempt that changed the row first makes this one read again.
    for (let round = 0; round < 5; round++) {
      const now = this.now();
      const row = await this.db.selectFrom("auth_failures").selectAll().where("key", "=", key).executeTakeFirst();
      if (row && row.blocked_until > now) return { waitMs: row.blocked_until - now };
      const forgotten = !row || row.last_failure_at < now - FORGET_AFTER_MS;
      const failures = forgotten ? 1 : row.failures + 1;
      const values = { failures, last_failure_at: now, blocked_until: now + delayAfter(failures, free) };
      if (!row) {
        const inserted = await this.db
          .insertInto("auth_failures")
          .values({ key, ...values })
          .onConflict((oc) => oc.column("key").doNothing())
          .executeTakeFirst();
        if (Number(inserted.numInsertedOrUpdatedRows ?? 0) === 1) {
          // Rows of keys nobody tried for a day go here, rather than by a timer.
          await this.db
            .deleteFrom("auth_failures")
            .where("last_failure_at", "<", now - FORGET_AFTER_MS)
            .where("blocked_until", "<", now)
            .execute();
          return { key, blockedUntil: values.blocked_until, previousBlockedUntil: 0 };
        }
        continue;
      }
      const updated = await this.db
        .updateTable("auth_failures")
        .set(values)
        .where("key", "=", key)
        .where("failures", "=", row.failures)
        .where("last_failure_at", "=", row.last_failure_at)
        .executeTakeFirst();
      if (Number(updated.numUpdatedRows) === 1) {
        return { key, blockedUntil: values.blocked_until, previousBlockedUntil: row.blocked_until };
      }
    }
    // Five concurrent attempts in a row on one key: that is guessing, not a person.
    return { waitMs: 1000 };
  }

  /** Takes counted attempts back, with the wait they set unless a later failure set another. */
  private async uncount(counted: CountedAttempt[]): Promise<void> {
    for (const { key, blockedUntil, previousBlockedUntil } of counted) {
      await this.db
        .updateTable("auth_failures")
        .set((eb) => ({
          failures: eb("failures", "-", 1),
          blocked_until: eb
            .case()
            .when("blocked_until", "=", blockedUntil)
            .then(previousBlockedUntil)
            .else(eb.ref("blocked_until"))
            .end(),
        }))
        .where("key", "=", key)
        .where("failures", ">", 0)
        .execute();
    }
  }
}
