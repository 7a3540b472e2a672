/**
 * A real local OAuth issuer (oauth2-mock-server) dressed as Google or as Microsoft Entra:
 * the providers' paths, ID tokens with the account's email (and Entra's per-tenant issuer),
 * granted scopes in the token response, and scripts for the next token answers
 * (invalid_grant, 500s, rotation, lifetimes). Every token request is recorded.
 */
import { randomUUID } from "node:crypto";
import { OAuth2Server } from "oauth2-mock-server";

export type IssuerKind = "google" | "microsoft";

/** The Entra directory (tenant) id the fake Microsoft puts in its ID tokens. */
export const TENANT_ID = "9188040d-6c67-4c5b-b112-36a304b66dad";

export interface TokenRequest {
  grantType: string;
  refreshToken?: string;
  code?: string;
  codeVerifier?: string;
  clientId?: string;
  scope?: string;
}

interface MutableResponse {
  body: Record<string, unknown>;
  statusCode: number;
}

type Script = (response: MutableResponse, request: TokenRequest) => void;

export interface MockIssuer {
  kind: IssuerKind;
  url: string;
  server: OAuth2Server;
  /** Environment for Mailroom pointing its provider at this issuer. */
  env: Record<string, string>;
  /** Every token request that got an answer (successful or scripted). */
  requests: TokenRequest[];
  /** Every token, code and ID token this issuer handed out (for leak checks). */
  issued: string[];
  /** How many revocation requests arrived. */
  revocations: number;
  /** The signed-in account's email (ID token and userinfo); null: none anywhere. */
  account: string | null;
  /** false: the email is only in the userinfo answer, as when the ID token lacks it. */
  emailInIdToken: boolean;
  /** The `iss` of the ID tokens, if not this issuer's own (Google's, behind a proxy). */
  idTokenIssuer: string | null;
  /** The scope the token response says was granted to a code exchange. */
  grantedScope: string;
  /** Access token lifetime (expires_in) for the next answers. */
  lifetimeSeconds: number;
  /** refresh_token_expires_in for code exchanges, if set. */
  grantLifetimeSeconds: number | null;
  /** Give a new refresh token on refresh (Microsoft does; Google does not). */
  rotate: boolean;
  /** Scripts for the next token answers, used once each, in order. */
  next: Script[];
  refreshRequests(): TokenRequest[];
  stop(): Promise<void>;
}

export async function startIssuer(kind: IssuerKind): Promise<MockIssuer> {
  const base = kind === "microsoft" ? "/organizations/oauth2/v2.0" : "";
  const server = new OAuth2Server(undefined, undefined, {
    endpoints: kind === "microsoft" ? { authorize: `${base}/authorize`, token: `${base}/token` } : {},
  });
  await server.issuer.keys.generate("RS256");
  await server.start(0, "127.0.0.1");
  const url = `http://127.0.0.1:${server.address().port}`;
  server.issuer.url = url;

  const issuer: MockIssuer = {
    kind,
    url,
    server,
    env:
      kind === "google"
        ? {
            MAILROOM_GOOGLE_AUTH_URL: `${url}/authorize`,
            MAILROOM_GOOGLE_TOKEN_URL: `${url}/token`,
            MAILROOM_GOOGLE_REVOKE_URL: `${url}/revoke`,
            MAILROOM_GOOGLE_USERINFO_URL: `${url}/userinfo`,
          }
        : { MAILROOM_MICROSOFT_AUTHORITY: url },
    requests: [],
    issued: [],
    revocations: 0,
    account: "sender@example.com",
    emailInIdToken: true,
    idTokenIssuer: null,
    grantedScope:
      kind === "google"
        ? "https://mail.google.com/ openid https://www.googleapis.com/auth/userinfo.email"
        : "https://outlook.office.com/SMTP.Send",
    lifetimeSeconds: 3600,
    grantLifetimeSeconds: null,
    rotate: kind === "microsoft",
    next: [],
    refreshRequests() {
      return this.requests.filter((r) => r.grantType === "refresh_token");
    },
    async stop() {
      if (server.listening) await server.stop();
    },
  };

  server.service.on("beforeTokenSigning", (token: { payload: Record<string, unknown> }) => {
    // Tokens signed in the same second would otherwise be identical.
    token.payload.jti = randomUUID();
    if (issuer.account && issuer.emailInIdToken) {
      token.payload.email = issuer.account;
      if (kind === "microsoft") token.payload.preferred_username = issuer.account;
    }
    if (kind === "microsoft") {
      token.payload.tid = TENANT_ID;
      token.payload.iss = `${url}/${TENANT_ID}/v2.0`;
    }
    if (issuer.idTokenIssuer) token.payload.iss = issuer.idTokenIssuer;
  });

  server.service.on("beforeResponse", (response: MutableResponse, req: { body: Record<string, string> }) => {
    const request: TokenRequest = {
      grantType: req.body.grant_type,
      refreshToken: req.body.refresh_token,
      code: req.body.code,
      codeVerifier: req.body.code_verifier,
      clientId: req.body.client_id,
      scope: req.body.scope,
    };
    issuer.requests.push(request);
    if (request.code) issuer.issued.push(request.code);
    const body = response.body;
    body.expires_in = issuer.lifetimeSeconds;
    if (request.grantType === "authorization_code") {
      body.scope = issuer.grantedScope;
      if (issuer.grantLifetimeSeconds) body.refresh_token_expires_in = issuer.grantLifetimeSeconds;
    }
    if (request.grantType === "refresh_token" && !issuer.rotate) delete body.refresh_token;
    if (kind === "google" && request.grantType === "refresh_token") delete body.id_token;
    const script = issuer.next.shift();
    script?.(response, request);
    for (const key of ["access_token", "refresh_token", "id_token"]) {
      if (typeof response.body[key] === "string") issuer.issued.push(response.body[key] as string);
    }
  });

  server.service.on("beforeRevoke", () => {
    issuer.revocations++;
  });

  server.service.on("beforeUserinfo", (response: MutableResponse) => {
    if (issuer.account) response.body.email = issuer.account;
  });
  return issuer;
}

/** Scripts for issuer.next. */
export const answers = {
  invalidGrant:
    (description = "Token has been expired or revoked."): Script =>
    (response) => {
      response.statusCode = 400;
      response.body = { error: "invalid_grant", error_description: description };
    },
  serverError:
    (status = 500): Script =>
    (response) => {
      response.statusCode = status;
      response.body = { error: "server_error", error_description: "Backend unavailable" };
    },
  invalidClient: (): Script => (response) => {
    response.statusCode = 401;
    response.body = { error: "invalid_client", error_description: "Unauthorized" };
  },
  error:
    (error: string, description: string, status = 400): Script =>
    (response) => {
      response.statusCode = status;
      response.body = { error, error_description: description };
    },
};
