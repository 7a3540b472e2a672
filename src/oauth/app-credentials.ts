/**
 * App-only tokens, no person in the loop: Microsoft's client credentials grant with a client
 * secret or a certificate (private_key_jwt), Google's JWT-bearer grant (RFC 7523) signed with
 * a service account's key for one mailbox. The token endpoints are the providers' own (or the
 * operator's MAILROOM_* overrides), never an address from a setting or from the key file.
 */
import { createHash, createPrivateKey, X509Certificate } from "node:crypto";
import * as jose from "jose";
import * as oidc from "openid-client";
import type { OAuthEndpointOverrides } from "../config.js";
import { appOnlyMethodOf, keyMatchesCertificate, parseServiceAccountKey } from "../drivers/oauth-fields.js";
import { findDriver } from "../drivers/registry.js";
import type { AppOnlyMethod, Driver } from "../drivers/types.js";
import type { Clock } from "../kernel/clock.js";
import { MailroomError } from "../kernel/errors.js";
import type { Settings } from "../kernel/settings.js";
import { type AccessTokenProvider, DeliveryError } from "../kernel/transport.js";
import type { EmailServersTable } from "../storage/schema.js";
import { buildClient, describeFailure, type OAuthFailure } from "./client.js";
import { type OAuthProvider, providerById } from "./providers/index.js";
import { tenantOf } from "./providers/microsoft.js";

const JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/** Everything one app-only token request needs. Holds decrypted secrets: never log it. */
export interface AppCredentials {
  method: AppOnlyMethod;
  provider: OAuthProvider;
  scope: string;
  settings: Settings;
  secrets: Record<string, string>;
  /** The mailbox the server sends as: Google's `sub`, the XOAUTH2 login. */
  mailbox: string;
}

export interface AppToken {
  accessToken: string;
  expiresInSeconds: number | undefined;
}

/** The app-only credentials of a server, or null when a person authorizes it. */
export function appCredentialsOf(row: EmailServersTable, secrets: Record<string, string>): AppCredentials | null {
  const driver = findDriver(row.driver);
  const settings = JSON.parse(row.settings) as Settings;
  const method = driver ? appOnlyMethodOf(driver, settings) : null;
  if (!driver?.oauthProvider || !driver.appOnly || !method) return null;
  return {
    method,
    provider: providerById(driver.oauthProvider),
    scope: driver.appOnly.scope,
    settings,
    secrets,
    mailbox: row.from_address.toLowerCase(),
  };
}

/** Whether a server uses app-only credentials. */
export function isAppOnly(driver: Driver | undefined, settings: Settings): boolean {
  return !!driver?.appOnly && appOnlyMethodOf(driver, settings) !== null;
}

function missing(what: string): MailroomError {
  return new MailroomError("oauth_client_missing", `The server has no ${what}: enter it and save.`, { missing: [what] });
}

function text(value: unknown): string {
  return typeof value === "string" ? value.trim() : "";
}

/** PKCS#1 or PKCS#8 PEM to the key jose signs with. */
async function signingKey(pem: string): Promise<CryptoKey> {
  const pkcs8 = createPrivateKey(pem).export({ type: "pkcs8", format: "pem" }) as string;
  return jose.importPKCS8(pkcs8, "RS256");
}

/** Asks the provider's token endpoint for an app-only token. Throws openid-client's errors as they are. */
export async function requestAppToken(
  creds: AppCredentials,
  overrides: OAuthEndpointOverrides,
  options: { timeoutSeconds?: number; now?: Clock } = {},
): Promise<AppToken> {
  const endpoints = creds.provider.endpoints(overrides, creds.settings);
  const timeoutSeconds = options.timeoutSeconds ?? 20;
  let result: oidc.TokenEndpointResponse;
  if (creds.method === "service_account") {
    const key = parseServiceAccountKey(creds.secrets.serviceAccountKey ?? "");
    if (typeof key === "string") throw missing("service account key");
    const iat = Math.floor((options.now ?? Date.now)() / 1000);
    // RFC 7523 and Google's service account flow: the mailbox is the subject, the token
    // endpoint the audience, at most an hour.
    const assertion = await new jose.SignJWT({ scope: creds.scope })
      .setProtectedHeader({ alg: "RS256", typ: "JWT", ...(key.private_key_id ? { kid: key.private_key_id } : {}) })
      .setIssuer(key.client_email)
      .setSubject(creds.mailbox)
      .setAudience(endpoints.token)
      .setIssuedAt(iat)
      .setExpirationTime(iat + 3600)
      .sign(await signingKey(key.private_key));
    const client = buildClient(endpoints, { clientId: key.client_email, clientAuth: oidc.None(), timeoutSeconds });
    result = await oidc.genericGrantRequest(client.config, JWT_BEARER, { assertion });
  } else {
    const clientId = text(creds.settings.clientId);
    if (clientId === "") throw missing("client ID");
    let clientAuth: oidc.ClientAuth;
    if (creds.method === "certificate") {
      const certificate = text(creds.settings.certificate);
      const privateKey = creds.secrets.privateKey ?? "";
      if (certificate === "") throw missing("certificate");
      if (privateKey === "") throw missing("private key");
      if (!keyMatchesCertificate(privateKey, certificate)) {
        throw new MailroomError(
          "oauth_app_rejected",
          "The private key does not belong to the certificate: paste the key the certificate was made from, or both again.",
        );
      }
      const der = new X509Certificate(certificate).raw;
      const x5t = createHash("sha1").update(der).digest("base64url");
      const x5tS256 = createHash("sha256").update(der).digest("base64url");
      clientAuth = oidc.PrivateKeyJwt(await signingKey(privateKey), {
        [oidc.modifyAssertion]: (header, payload) => {
          // Entra finds the certificate by its thumbprint, and wants the token endpoint as audience.
          Object.assign(header, { x5t, "x5t#S256": x5tS256 });
          payload.aud = endpoints.token;
        },
      });
    } else {
      const secret = creds.secrets.clientSecret ?? "";
      if (secret === "") throw missing("client secret");
      clientAuth = oidc.ClientSecretPost(secret);
    }
    const client = buildClient(endpoints, { clientId, clientAuth, timeoutSeconds });
    result = await oidc.clientCredentialsGrant(client.config, { scope: creds.scope });
  }
  return { accessToken: result.access_token, expiresInSeconds: result.expires_in };
}

/**
 * A refusal of app-only credentials, worded as what to fix at the provider. null: not a
 * refusal (timeout, 5xx, 429): worth trying again later.
 */
export function appRefusal(creds: AppCredentials, failure: OAuthFailure): string | null {
  if (failure.unreachable || failure.status === null || failure.status >= 500 || failure.status === 429) return null;
  const said = `${creds.provider.label} answered ${failure.text}`;
  if (creds.provider.id === "microsoft") {
    const clientId = text(creds.settings.clientId);
    const tenant = tenantOf(creds.settings);
    const aadsts = /AADSTS(\d+)/.exec(failure.description ?? "")?.[1];
    const permission = creds.scope.startsWith("https://graph.microsoft.com/")
      ? "Microsoft Graph application permission Mail.Send"
      : "Office 365 Exchange Online application permission SMTP.SendAsApp";
    switch (aadsts) {
      case "7000215":
        return `${said}. The client secret is wrong: paste the secret's Value (not its Secret ID) from Entra → App registrations → your app → Certificates & secrets.`;
      case "7000222":
        return `${said}. The client secret has expired: create a new one under Certificates & secrets and paste its Value.`;
      case "700016":
        return `${said}. No application with client ID ${clientId} is registered in tenant ${tenant}: check the Application (client) ID and the tenant, and that an administrator of that tenant consented to the app.`;
      case "90002":
        return `${said}. Tenant ${tenant} does not exist: use the Directory (tenant) ID or a verified domain from Entra → Overview.`;
      case "700027":
      case "700024":
      case "7000274":
        return `${said}. Entra did not accept the certificate: upload this certificate (see its thumbprint) to the app under Certificates & secrets → Certificates.`;
      case "70011":
      case "1002012":
        return `${said}. The scope ${creds.scope} is not valid for this app: grant the ${permission} with admin consent.`;
      case "500011":
        return `${said}. The resource is not in the tenant: add the ${permission} and grant admin consent.`;
    }
    return `${said}. Check the tenant, client ID and ${creds.method === "certificate" ? "certificate" : "client secret"}.`;
  }
  const key = parseServiceAccountKey(creds.secrets.serviceAccountKey ?? "");
  const clientId = typeof key === "string" ? "of the service account" : (key.client_id ?? key.client_email);
  if (failure.error === "unauthorized_client") {
    return `${said}. Domain-wide delegation is not granted: in the Google Admin console → Security → Access and data control → API controls → Domain-wide delegation, add client ID ${clientId} with the scope ${creds.scope}.`;
  }
  if (failure.error === "invalid_grant" && /email|user/i.test(failure.description ?? "")) {
    return `${said}. ${creds.mailbox} is not a user of the Workspace the service account may act in: the from address must be a mailbox of that domain.`;
  }
  if (failure.error === "invalid_grant" || failure.error === "invalid_client") {
    return `${said}. Google no longer accepts this key (deleted, or the service account is disabled): create a new JSON key and paste it.`;
  }
  if (failure.error === "invalid_scope") {
    return `${said}. Add the scope ${creds.scope} to the client's domain-wide delegation.`;
  }
  return `${said}. Check the service account key and its domain-wide delegation (scope ${creds.scope}).`;
}

/** A failed app-only token request as the DeliveryError a send or a check reports. */
export function appTokenError(creds: AppCredentials, error: unknown): DeliveryError {
  if (error instanceof DeliveryError) return error;
  if (error instanceof MailroomError) return new DeliveryError(error.code, "server", error.message);
  const failure = describeFailure(error);
  const refusal = appRefusal(creds, failure);
  if (refusal) return new DeliveryError("oauth_app_rejected", "server", refusal);
  return new DeliveryError(
    "oauth_token_unavailable",
    "transient",
    `${creds.provider.label}'s token endpoint failed (${failure.text}); Mailroom retries with backoff.`,
  );
}

/**
 * Tokens for one test of a server (saved or a draft): asked for directly, never stored, so a
 * draft's credentials never replace the saved server's token. One request per test; a
 * rejected token is asked for once more.
 */
export function directAppTokens(
  creds: AppCredentials,
  overrides: OAuthEndpointOverrides,
  timeoutSeconds?: number,
): AccessTokenProvider {
  let current: Promise<string> | undefined;
  const fetchToken = () =>
    requestAppToken(creds, overrides, { timeoutSeconds }).then(
      (token) => token.accessToken,
      (error: unknown) => {
        throw appTokenError(creds, error);
      },
    );
  return {
    user: async () => creds.mailbox,
    accessToken: async (renew) => {
      if (!current || renew) current = fetchToken();
      return current;
    },
  };
}
