import { MailroomError } from "../../kernel/errors.js";
import { google } from "./google.js";
import { microsoft } from "./microsoft.js";
import type { OAuthProvider } from "./types.js";

export type { IdTokenClaims, OAuthProvider, ProviderEndpoints } from "./types.js";

export const providers: Record<OAuthProvider["id"], OAuthProvider> = { google, microsoft };

export function providerById(id: string): OAuthProvider {
  const provider = (providers as Record<string, OAuthProvider | undefined>)[id];
  if (!provider) throw new MailroomError("oauth_not_supported", `Unknown OAuth provider '${id}'.`);
  return provider;
}
