import { createMailroom } from "../app.js";
import type { Config } from "../config.js";
import { cliActor } from "../core/audit.js";
import { reencryptAll } from "../core/key-rotation.js";
import { reencryptAlertSecrets } from "../events/alerts/channels.js";
import { reencryptEventSourceSecrets } from "../events/provider-events/sources.js";
import { reencryptWebhookSecrets } from "../events/webhooks/key-rotation.js";
import { reencryptOAuthSecrets } from "../oauth/key-rotation.js";
import { migrateToLatest } from "../storage/db.js";
import { addKeyToFile, pruneKeyFile } from "../storage/secrets.js";

/**
 * `mailroom keys rotate`. With the key file: a new key is added, every secret is
 * re-encrypted with it, then the old keys are dropped. With MAILROOM_SECRET_KEY the
 * operator puts the new key first ("new,old"), runs this, then removes the old one.
 */
export async function keysCommand(config: Config): Promise<number> {
  if (!config.secretKey) addKeyToFile(config.dataDir);
  const mailroom = createMailroom(config);
  try {
    await migrateToLatest(mailroom.ctx.db);
    // OAuth tokens, PKCE verifiers, webhook, event-source and alert channel secrets are secrets too,
    // re-encrypted in the same transaction: the old key is dropped only once everything uses the new one.
    const count = await reencryptAll(mailroom.ctx.db, mailroom.ctx.secrets, cliActor, [
      reencryptOAuthSecrets,
      reencryptEventSourceSecrets,
      reencryptWebhookSecrets,
      reencryptAlertSecrets,
    ]);
    if (!config.secretKey) pruneKeyFile(config.dataDir);
    console.log(`Re-encrypted ${count} secret(s), OAuth tokens included, with key ${mailroom.ctx.secrets.currentKeyId}.`);
    if (config.secretKey?.includes(",")) {
      console.log("Every secret now uses the first key in MAILROOM_SECRET_KEY: remove the others from it.");
    } else if (config.secretKey) {
      // With one key there is nothing to rotate to: say how, rather than report success.
      console.log(
        "MAILROOM_SECRET_KEY holds one key, so nothing changed: to rotate, set it to 'NEW,OLD' (new key first), run this again, then remove OLD.",
      );
    }
    return 0;
  } finally {
    await mailroom.close();
  }
}
