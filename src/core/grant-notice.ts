import type { EmailServersTable } from "../storage/schema.js";

const DAY_MS = 24 * 60 * 60_000;

/**
 * What a ready OAuth server's status detail says about its grant: when the authorization
 * ends (if the provider said, e.g. Google apps in "Testing": 7 days), and whether the from
 * address is the authorized mailbox. null when there is nothing to say.
 */
export function grantNotice(
  row: Pick<EmailServersTable, "oauth_account" | "oauth_expires_at" | "from_address" | "driver">,
  now = Date.now(),
): string | null {
  const notes: string[] = [];
  if (row.oauth_expires_at !== null) {
    const date = new Date(row.oauth_expires_at).toISOString().slice(0, 10);
    const days = Math.ceil((row.oauth_expires_at - now) / DAY_MS);
    notes.push(
      days > 0
        ? `The authorization expires in ${days} ${days === 1 ? "day" : "days"} (${date}): authorize the account again before then.`
        : `The authorization expired on ${date}: authorize the account again.`,
    );
  }
  const account = row.oauth_account?.toLowerCase();
  const from = row.from_address.toLowerCase();
  if (account && from && account !== from) {
    notes.push(
      row.driver === "microsoft365"
        ? `The from address ${row.from_address} is not the authorized account ${row.oauth_account}: Microsoft 365 sends as it only if ${row.oauth_account} has "Send As" permission on it.`
        : `The from address ${row.from_address} is not the authorized account ${row.oauth_account}: Gmail sends as it only if it is one of that account's "Send mail as" addresses, and otherwise rewrites it.`,
    );
  }
  return notes.length ? notes.join(" ") : null;
}
