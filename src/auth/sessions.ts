import { createHash, randomBytes } from "node:crypto";
import type { Kysely } from "kysely";
import type { Database } from "../storage/schema.js";

export const SESSION_COOKIE = "mailroom_session";
const SESSION_LIFETIME_MS = 12 * 60 * 60 * 1000;

function sha256(value: string): string {
  return createHash("sha256").update(value).digest("hex");
}

/** Sessions are opaque random ids; the database holds only their hash. */
export class SessionStore {
  constructor(private readonly db: Kysely<Database>) {}

  async create(userId: string): Promise<{ cookie: string; csrfToken: string; expiresAt: number }> {
    const cookie = randomBytes(32).toString("base64url");
    const csrfToken = randomBytes(24).toString("base64url");
    const now = Date.now();
    const expiresAt = now + SESSION_LIFETIME_MS;
    await this.db
      .insertInto("sessions")
      .values({ id: sha256(cookie), user_id: userId, csrf_token: csrfToken, created_at: now, expires_at: expiresAt })
      .execute();
    // Expired sessions are dropped here rather than by a timer: logins are rare enough.
    await this.db.deleteFrom("sessions").where("expires_at", "<", now).execute();
    return { cookie, csrfToken, expiresAt };
  }

  async find(cookie: string): Promise<{ userId: string; csrfToken: string } | null> {
    const row = await this.db
      .selectFrom("sessions")
      .select(["user_id", "csrf_token", "expires_at"])
      .where("id", "=", sha256(cookie))
      .executeTakeFirst();
    if (!row || row.expires_at < Date.now()) return null;
    return { userId: row.user_id, csrfToken: row.csrf_token };
  }

  async delete(cookie: string): Promise<void> {
    await this.db.deleteFrom("sessions").where("id", "=", sha256(cookie)).execute();
  }
}
