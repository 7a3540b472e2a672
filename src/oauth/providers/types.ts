import type { OAuthEndpointOverrides } from "../../config.js";
import type { Settings } from "../../kernel/settings.js";

/** Where a provider's OAuth endpoints are, for one server (Microsoft's depend on the tenant). */
export interface ProviderEndpoints {
  /** The issuer as written in its ID tokens; Microsoft's holds a `{tenantid}` placeholder. */
  issuer: string;
  authorization: string;
  token: string;
  /** null where the provider has none (Microsoft). */
  revocation: string | null;
  /** null where the provider offers none for these tokens (Microsoft's needs a Graph token). */
  userinfo: string | null;
}

/** The ID-token claims Mailroom reads. */
export interface IdTokenClaims {
  iss: string;
  sub: string;
  aud: string | string[];
  exp: number;
  email?: string;
  email_verified?: boolean;
  preferred_username?: string;
  tid?: string;
}

/**
 * One OAuth provider: endpoints and scopes only. The flow, the token store and the
 * error handling are shared (src/oauth/flow.ts, token-store.ts).
 */
export interface OAuthProvider {
  id: "google" | "microsoft";
  label: string;
  /** Scopes asked for by the SMTP drivers: what SMTP needs, plus who signed in (a driver may declare its own). */
  scopes: readonly string[];
  /** The scope SMTP login needs; the grant is refused without it. */
  smtpScope: string;
  endpoints(overrides: OAuthEndpointOverrides, settings: Settings): ProviderEndpoints;
  /** Extra authorization request parameters (offline access, consent prompt, login hint). */
  authorizationParameters(loginHint: string | null): Record<string, string>;
  /** Extra refresh request parameters; `scopes` are the driver's (Microsoft names the resource by them). */
  refreshParameters(scopes: readonly string[]): Record<string, string>;
  /** Whether an ID token's `iss` is one this provider issues through these endpoints. */
  acceptsIssuer(claims: IdTokenClaims, endpoints: ProviderEndpoints, settings: Settings): boolean;
  /** The mailbox that signed in, from ID-token (or userinfo) claims. */
  accountFrom(claims: Partial<IdTokenClaims>): string | null;
  /** Where a user removes Mailroom's access by hand (said when revocation is not possible). */
  accessPage: string;
}

const EMAIL = /^[^\s@]+@[^\s@]+$/;

export function emailOrNull(value: unknown): string | null {
  return typeof value === "string" && EMAIL.test(value) ? value.toLowerCase() : null;
}
