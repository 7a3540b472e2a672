import type { Kysely } from "kysely";
import type { Database } from "../storage/schema.js";
import type { SecretBox } from "../storage/secrets.js";

/**
 * Re-encrypts the OAuth tokens and PKCE verifiers with the box's current key, in the
 * caller's transaction (`mailroom keys rotate` calls it beside the servers' secrets).
 * Returns how many values were rewritten.
 */
export async function reencryptOAuthSecrets(trx: Kysely<Database>, box: SecretBox): Promise<number> {
  const fresh = (value: string | null) => (value !== null && box.isStale(value) ? box.encrypt(box.decrypt(value)) : value);
  let count = 0;
  const tokens = await trx.selectFrom("oauth_tokens").select(["server_id", "refresh_token", "access_token"]).execute();
  for (const row of tokens) {
    const refresh = fresh(row.refresh_token) as string;
    const access = fresh(row.access_token);
    const changed = Number(refresh !== row.refresh_token) + Number(access !== row.access_token);
    if (changed === 0) continue;
    count += changed;
    await trx
      .updateTable("oauth_tokens")
      .set({ refresh_token: refresh, access_token: access })
      .where("server_id", "=", row.server_id)
      .execute();
  }
  const pending = await trx.selectFrom("oauth_authorizations").select(["state_hash", "code_verifier"]).execute();
  for (const row of pending) {
    const verifier = fresh(row.code_verifier) as string;
    if (verifier === row.code_verifier) continue;
    count++;
    await trx
      .updateTable("oauth_authorizations")
      .set({ code_verifier: verifier })
      .where("state_hash", "=", row.state_hash)
      .execute();
  }
  return count;
}
