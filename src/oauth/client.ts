import * as oidc from "openid-client";
import type { Settings } from "../kernel/settings.js";
import type { IdTokenClaims, OAuthProvider, ProviderEndpoints } from "./providers/index.js";

/**
 * An openid-client Configuration built from static metadata (no discovery: the endpoints
 * are code defaults or MAILROOM_* overrides), with the client authenticated by
 * client_secret_post.
 *
 * openid-client validates an ID token's `iss` against one fixed issuer, which cannot
 * express Microsoft's per-tenant issuers (it does so only after discovery of
 * login.microsoftonline.com) nor Google's two spellings. So the token endpoint's answer
 * reaches openid-client without its id_token, which is kept aside here and checked by
 * validateIdToken with the provider's own issuer rule. Everything else (PKCE, state,
 * client authentication, response and error parsing) is openid-client's.
 */
export interface ProviderClient {
  config: oidc.Configuration;
  endpoints: ProviderEndpoints;
  /** The id_token of the last token endpoint answer, once. */
  takeIdToken(): string | undefined;
}

export interface ClientOptions {
  clientId: string;
  /** client_secret_post with this secret, unless `clientAuth` says otherwise. */
  clientSecret?: string;
  /** How the client authenticates (app-only: a signed assertion, or none for a JWT-bearer grant). */
  clientAuth?: oidc.ClientAuth;
  /** Seconds each request may take. */
  timeoutSeconds?: number;
}

export function buildClient(endpoints: ProviderEndpoints, options: ClientOptions): ProviderClient {
  const metadata: oidc.ServerMetadata = {
    issuer: endpoints.issuer,
    authorization_endpoint: endpoints.authorization,
    token_endpoint: endpoints.token,
    code_challenge_methods_supported: ["S256"],
    ...(endpoints.revocation ? { revocation_endpoint: endpoints.revocation } : {}),
    ...(endpoints.userinfo ? { userinfo_endpoint: endpoints.userinfo } : {}),
  };
  const config = new oidc.Configuration(
    metadata,
    options.clientId,
    options.clientSecret !== undefined ? { client_secret: options.clientSecret } : {},
    options.clientAuth ?? oidc.ClientSecretPost(options.clientSecret ?? ""),
  );
  config.timeout = options.timeoutSeconds ?? 20;
  // The defaults are https; plain http only comes from an explicit override (a local issuer).
  const urls = [endpoints.authorization, endpoints.token, endpoints.revocation, endpoints.userinfo];
  if (urls.some((u) => u?.startsWith("http:"))) oidc.allowInsecureRequests(config);

  let idToken: string | undefined;
  const tokenUrl = new URL(endpoints.token).href;
  config[oidc.customFetch] = async (url, init) => {
    const response = await fetch(url, init as RequestInit);
    if (new URL(url).href !== tokenUrl || !response.ok) return response;
    const text = await response.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      return new Response(text, { status: response.status, headers: response.headers });
    }
    if (body && typeof body === "object" && "id_token" in body) {
      const record = body as Record<string, unknown>;
      idToken = typeof record.id_token === "string" ? record.id_token : undefined;
      delete record.id_token;
    }
    const headers = new Headers(response.headers);
    headers.delete("content-length");
    headers.delete("content-encoding");
    return new Response(JSON.stringify(body), { status: response.status, statusText: response.statusText, headers });
  };
  return {
    config,
    endpoints,
    takeIdToken() {
      const token = idToken;
      idToken = undefined;
      return token;
    },
  };
}

export function clientFor(
  provider: OAuthProvider,
  overrides: Parameters<OAuthProvider["endpoints"]>[0],
  settings: Settings,
  credentials: ClientOptions,
): ProviderClient {
  return buildClient(provider.endpoints(overrides, settings), credentials);
}

/** Why an ID token was not accepted. */
export class IdTokenError extends Error {
  override name = "IdTokenError";
}

/**
 * Checks an ID token received straight from the token endpoint over TLS: as OpenID
 * Connect allows for that case (Core 3.1.3.7), the claims are checked and the signature
 * is not.
 */
export function validateIdToken(
  provider: OAuthProvider,
  endpoints: ProviderEndpoints,
  settings: Settings,
  idToken: string,
  clientId: string,
  now = Date.now(),
): IdTokenClaims {
  const parts = idToken.split(".");
  if (parts.length !== 3) throw new IdTokenError("the ID token is not a JWT");
  let claims: IdTokenClaims;
  try {
    claims = JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8")) as IdTokenClaims;
  } catch {
    throw new IdTokenError("the ID token's claims are not JSON");
  }
  if (typeof claims !== "object" || claims === null) throw new IdTokenError("the ID token has no claims");
  const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!audiences.includes(clientId)) throw new IdTokenError("the ID token was issued to another client");
  if (typeof claims.exp !== "number" || claims.exp * 1000 < now - 60_000) throw new IdTokenError("the ID token has expired");
  if (typeof claims.sub !== "string" || claims.sub === "") throw new IdTokenError("the ID token names no subject");
  if (typeof claims.iss !== "string" || !provider.acceptsIssuer(claims, endpoints, settings)) {
    throw new IdTokenError(
      `the ID token's issuer '${String(claims.iss).slice(0, 120)}' is not ${provider.label}'s (${endpoints.issuer})`,
    );
  }
  return claims;
}

/** The facts of an OAuth failure that are safe to log, show and audit: never a token or code. */
export interface OAuthFailure {
  /** The OAuth error code the provider answered (invalid_grant, …), if any. */
  error: string | null;
  description: string | null;
  /** HTTP status of the provider's answer, if there was one. */
  status: number | null;
  /** No answer at all: network error or timeout. */
  unreachable: boolean;
  text: string;
}

function clip(value: unknown, max = 300): string | null {
  if (typeof value !== "string" || value === "") return null;
  // Provider descriptions are one line of prose; keep them that way.
  const flat = value.replace(/[\r\n\t]+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
}

/**
 * Reads an error from openid-client without touching its `cause`, which can carry the
 * callback parameters (the code) or the token endpoint's body (tokens).
 */
export function describeFailure(error: unknown): OAuthFailure {
  if (error instanceof oidc.ResponseBodyError) {
    const description = clip(error.error_description);
    return {
      error: clip(error.error, 80),
      description,
      status: error.status,
      unreachable: false,
      text: `HTTP ${error.status} ${clip(error.error, 80)}${description ? `: ${description}` : ""}`,
    };
  }
  if (error instanceof oidc.AuthorizationResponseError) {
    const description = clip(error.error_description);
    return {
      error: clip(error.error, 80),
      description,
      status: null,
      unreachable: false,
      text: `${clip(error.error, 80)}${description ? `: ${description}` : ""}`,
    };
  }
  const err = error as { name?: string; message?: string; code?: string; cause?: unknown };
  const cause = err?.cause as { name?: string } | undefined;
  if (
    err?.name === "TimeoutError" ||
    err?.name === "AbortError" ||
    err?.code === "OAUTH_TIMEOUT" ||
    cause?.name === "TimeoutError"
  ) {
    return { error: null, description: null, status: null, unreachable: true, text: "no answer in time (timeout)" };
  }
  if (error instanceof TypeError) {
    const cause = err.cause as { code?: string } | undefined;
    return {
      error: null,
      description: null,
      status: null,
      unreachable: true,
      text: `could not be reached (${clip(cause?.code, 40) ?? clip(err.message, 120)})`,
    };
  }
  if (error instanceof oidc.ClientError) {
    // Some codes carry the Response as cause (a non-JSON error page, e.g. a 502 from a proxy).
    const status = err.cause instanceof Response ? err.cause.status : null;
    return {
      error: null,
      description: null,
      status,
      unreachable: false,
      text: `${status ? `HTTP ${status}: ` : ""}${clip(err.message, 200)} (${clip(err.code, 60) ?? "client error"})`,
    };
  }
  return { error: null, description: null, status: null, unreachable: false, text: clip(err?.message, 200) ?? "unknown error" };
}
