import type { Kysely } from "kysely";
import type { Database } from "../storage/schema.js";
import type { SecretBox } from "../storage/secrets.js";
import { type Actor, writeAudit } from "./audit.js";

/** Re-encrypts the secrets another module keeps (OAuth tokens), in the same transaction. */
export type Reencryptor = (trx: Kysely<Database>, box: SecretBox) => Promise<number>;

/**
 * Re-encrypts every stored secret with the box's current key, in one transaction, so a
 * crash leaves either all old or all new ciphertexts. Returns how many were rewritten.
 */
export async function reencryptAll(
  db: Kysely<Database>,
  box: SecretBox,
  actor: Actor,
  others: Reencryptor[] = [],
): Promise<number> {
  return db.transaction().execute(async (trx) => {
    let count = 0;
    for (const reencrypt of others) count += await reencrypt(trx, box);
    const rows = await trx.selectFrom("email_servers").select(["id", "secrets"]).execute();
    for (const row of rows) {
      const secrets = JSON.parse(row.secrets) as Record<string, string>;
      let changed = false;
      for (const [key, value] of Object.entries(secrets)) {
        if (!box.isStale(value)) continue;
        secrets[key] = box.encrypt(box.decrypt(value));
        changed = true;
        count++;
      }
      if (changed)
        await trx
          .updateTable("email_servers")
          .set({ secrets: JSON.stringify(secrets) })
          .where("id", "=", row.id)
          .execute();
    }
    await writeAudit(trx, actor, {
      action: "keys.rotate",
      targetType: "secret_key",
      targetId: box.currentKeyId,
      after: { reencrypted: count },
    });
    return count;
  });
}
