import type { Kysely } from "kysely";
import type { Database } from "../../storage/schema.js";
import type { SecretBox } from "../../storage/secrets.js";

/**
 * Re-encrypts webhook signing secrets (and a previous one still signing after a rotation)
 * with the box's current key, in the caller's transaction (`mailroom keys rotate`).
 */
export async function reencryptWebhookSecrets(trx: Kysely<Database>, box: SecretBox): Promise<number> {
  const fresh = (value: string | null) => (value !== null && box.isStale(value) ? box.encrypt(box.decrypt(value)) : value);
  let count = 0;
  const rows = await trx.selectFrom("webhooks").select(["id", "secret", "previous_secret"]).execute();
  for (const row of rows) {
    const secret = fresh(row.secret) as string;
    const previous = fresh(row.previous_secret);
    const changed = Number(secret !== row.secret) + Number(previous !== row.previous_secret);
    if (changed === 0) continue;
    count += changed;
    await trx.updateTable("webhooks").set({ secret, previous_secret: previous }).where("id", "=", row.id).execute();
  }
  return count;
}
