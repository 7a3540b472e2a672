import type { EmailServerService } from "../core/email-servers.js";
import { appOnlyMethodOf } from "../drivers/oauth-fields.js";
import { findDriver } from "../drivers/registry.js";
import type { Driver } from "../drivers/types.js";
import { MailroomError } from "../kernel/errors.js";
import type { Settings } from "../kernel/settings.js";
import type { EmailServersTable } from "../storage/schema.js";
import { type OAuthProvider, providerById } from "./providers/index.js";

/** The driver and OAuth provider of a server; refuses servers that do not use OAuth. */
export function oauthOf(row: EmailServersTable): { driver: Driver; provider: OAuthProvider } {
  const driver = findDriver(row.driver);
  if (!driver?.oauthProvider) {
    throw new MailroomError(
      "oauth_not_supported",
      `'${row.name}' uses the ${driver?.label ?? row.driver} driver, which does not sign in with OAuth; only the Google and Microsoft drivers do.`,
    );
  }
  return { driver, provider: providerById(driver.oauthProvider) };
}

/** What a server's driver asks its provider for, and which granted scope proves it may send. */
export function oauthScopesOf(
  driver: Driver,
  provider: OAuthProvider,
): { request: readonly string[]; sending: readonly string[] } {
  return driver.oauthScopes ?? { request: provider.scopes, sending: [provider.smtpScope] };
}

/** oauthOf for the authorize flow: a server with application credentials has nobody to authorize. */
export function delegatedOauthOf(row: EmailServersTable): { driver: Driver; provider: OAuthProvider } {
  const found = oauthOf(row);
  const method = appOnlyMethodOf(found.driver, JSON.parse(row.settings) as Settings);
  if (method) {
    throw new MailroomError(
      "oauth_not_supported",
      `'${row.name}' uses application credentials (${method}): nobody authorizes it. Use 'Check connection' to prove them, or choose the delegated method to authorize an account.`,
    );
  }
  return found;
}

export interface ClientCredentials {
  settings: Settings;
  clientId: string;
  clientSecret: string;
}

/** The server's OAuth client, decrypted for one request to the provider. Never log it. */
export function credentialsOf(servers: EmailServerService, row: EmailServersTable): ClientCredentials {
  const settings = JSON.parse(row.settings) as Settings;
  const clientId = typeof settings.clientId === "string" ? settings.clientId.trim() : "";
  const clientSecret = servers.secretsOf(row).clientSecret ?? "";
  if (clientId === "" || clientSecret === "") {
    const missing = [clientId === "" ? "clientId" : null, clientSecret === "" ? "clientSecret" : null].filter(Boolean);
    throw new MailroomError(
      "oauth_client_missing",
      `'${row.name}' has no ${missing.join(" and ")}: enter the OAuth client's ID and secret and save, then authorize.`,
      { missing },
    );
  }
  return { settings, clientId, clientSecret };
}

/** The redirect URI registered at the provider, derived from MAILROOM_PUBLIC_URL. */
export function redirectUriOf(driver: Driver, publicUrl: string): string {
  const uri = driver.derive?.({ publicUrl }).redirectUri;
  if (!uri) throw new Error(`The ${driver.id} driver derives no redirect URI`);
  return uri;
}
