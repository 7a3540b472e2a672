/**
 * The providers' token endpoints for app-only credentials, as they document them, in front of
 * the local oauth2-mock-server that mints the tokens:
 * - Microsoft Entra `/{tenant}/oauth2/v2.0/token`, client_credentials with client_secret or a
 *   client assertion (private_key_jwt) whose signature is checked against the registered
 *   certificate, and Entra's AADSTS errors for an unknown tenant, an unknown app, a wrong secret
 *   or an unknown certificate;
 * - Google `/token`, the JWT-bearer grant (RFC 7523) whose assertion is checked against the
 *   service account's public key, and `unauthorized_client` for a mailbox or scope without
 *   domain-wide delegation.
 * A checked request is passed on to the mock issuer as client_credentials, so its scripts
 * (issuer.next, lifetimes) and its record of issued tokens apply.
 */
import { createHash, generateKeyPairSync, randomBytes, X509Certificate } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import * as jose from "jose";
import { generate } from "selfsigned";
import { type IssuerKind, type MockIssuer, startIssuer, TENANT_ID } from "./issuer.js";

export const APP_CLIENT_ID = "3f1b2c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
export const APP_SECRET = `app-secret-${randomBytes(8).toString("hex")}`;
export const MS_APP_SCOPE = "https://outlook.office365.com/.default";
export const GMAIL_APP_SCOPE = "https://mail.google.com/";
export const SA_EMAIL = "mailroom@project.iam.gserviceaccount.com";
export const SA_CLIENT_ID = "112233445566778899000";

/** What the endpoint checked about one request (the assertion's header and claims, verified). */
export interface CheckedRequest {
  grantType: string;
  tenant?: string;
  clientId?: string;
  scope?: string;
  /** client_secret | private_key_jwt | jwt-bearer */
  auth: string;
  header?: jose.ProtectedHeaderParameters;
  claims?: jose.JWTPayload;
}

export interface AppIssuer {
  issuer: MockIssuer;
  url: string;
  env: Record<string, string>;
  /** Requests that passed the provider's checks and got a token. */
  checked: CheckedRequest[];
  /** Every request that reached the endpoint, refused or not. */
  received: number;
  /** Microsoft: the registered certificate (PEM) and its key; Google: the service account key (JSON). */
  certificate: string;
  privateKey: string;
  serviceAccountKey: string;
  /** Google: the mailboxes the service account may act for (domain-wide delegation). */
  delegatedMailboxes: Set<string>;
  stop(): Promise<void>;
}

function formBody(req: http.IncomingMessage): Promise<URLSearchParams> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(new URLSearchParams(Buffer.concat(chunks).toString("utf8"))));
    req.on("error", reject);
  });
}

function answer(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

const entraError = (res: http.ServerResponse, status: number, error: string, aadsts: string, text: string) =>
  answer(res, status, {
    error,
    error_description: `AADSTS${aadsts}: ${text} Trace ID: 0 Correlation ID: 0`,
    error_codes: [Number(aadsts)],
  });

/** `scope`: the one the driver's app-only credentials must ask for (the SMTP drivers' by default). */
export async function startAppIssuer(
  kind: IssuerKind,
  scope = kind === "microsoft" ? MS_APP_SCOPE : GMAIL_APP_SCOPE,
): Promise<AppIssuer> {
  const issuer = await startIssuer(kind);
  const pems = await generate([{ name: "commonName", value: "Mailroom app credential" }], { keySize: 2048 });
  const { privateKey: saKey, publicKey: saPublic } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const saPem = saKey.export({ type: "pkcs8", format: "pem" }) as string;
  const certificate = new X509Certificate(pems.cert);
  const checked: CheckedRequest[] = [];
  let url = "";

  /** Passes a checked request on to the mock issuer, which mints the token. */
  async function mint(res: http.ServerResponse, scope: string): Promise<void> {
    const path = kind === "microsoft" ? "/organizations/oauth2/v2.0/token" : "/token";
    const minted = await fetch(`${issuer.url}${path}`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "client_credentials", scope }),
    });
    answer(res, minted.status, await minted.json());
  }

  async function microsoft(req: http.IncomingMessage, res: http.ServerResponse, body: URLSearchParams): Promise<void> {
    const tenant = decodeURIComponent(/^\/([^/]+)\/oauth2\/v2\.0\/token$/.exec(req.url ?? "")?.[1] ?? "");
    if (tenant !== TENANT_ID && tenant !== "contoso.example") {
      return entraError(res, 400, "invalid_request", "90002", `Tenant '${tenant}' not found.`);
    }
    if (body.get("grant_type") !== "client_credentials") return entraError(res, 400, "unsupported_grant_type", "70003", "");
    const clientId = body.get("client_id") ?? "";
    if (clientId !== APP_CLIENT_ID) {
      return entraError(
        res,
        400,
        "unauthorized_client",
        "700016",
        `Application with identifier '${clientId}' was not found in the directory.`,
      );
    }
    const asked = body.get("scope") ?? "";
    if (asked !== scope)
      return entraError(res, 400, "invalid_scope", "1002012", `The provided value for scope ${asked} is not valid.`);
    const tokenUrl = `${url}${req.url}`;
    if (body.has("client_assertion")) {
      try {
        const { payload, protectedHeader } = await jose.jwtVerify(body.get("client_assertion") ?? "", certificate.publicKey, {
          audience: tokenUrl,
          issuer: APP_CLIENT_ID,
          subject: APP_CLIENT_ID,
          algorithms: ["RS256"],
        });
        const x5t = createHash("sha1").update(certificate.raw).digest("base64url");
        if (protectedHeader.x5t !== x5t) throw new Error("unknown thumbprint");
        if (body.get("client_assertion_type") !== "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
          throw new Error("type");
        checked.push({
          grantType: "client_credentials",
          tenant,
          clientId,
          scope: asked,
          auth: "private_key_jwt",
          header: protectedHeader,
          claims: payload,
        });
      } catch {
        return entraError(res, 401, "invalid_client", "700027", "Client assertion failed signature validation.");
      }
    } else if (body.get("client_secret") === APP_SECRET) {
      checked.push({ grantType: "client_credentials", tenant, clientId, scope: asked, auth: "client_secret" });
    } else {
      return entraError(
        res,
        401,
        "invalid_client",
        "7000215",
        "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
      );
    }
    return mint(res, asked);
  }

  async function google(res: http.ServerResponse, body: URLSearchParams): Promise<void> {
    if (body.get("grant_type") !== "urn:ietf:params:oauth:grant-type:jwt-bearer") {
      return answer(res, 400, { error: "unsupported_grant_type", error_description: "Invalid grant_type" });
    }
    let claims: jose.JWTPayload;
    let header: jose.ProtectedHeaderParameters;
    try {
      const verified = await jose.jwtVerify(body.get("assertion") ?? "", saPublic, {
        audience: `${url}/token`,
        issuer: SA_EMAIL,
        algorithms: ["RS256"],
        maxTokenAge: "1h",
      });
      claims = verified.payload;
      header = verified.protectedHeader;
    } catch {
      return answer(res, 400, { error: "invalid_grant", error_description: "Invalid JWT Signature." });
    }
    const asked = String(claims.scope ?? "");
    if (asked !== scope || !claims.sub || !app.delegatedMailboxes.has(claims.sub)) {
      return answer(res, 401, {
        error: "unauthorized_client",
        error_description:
          "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.",
      });
    }
    checked.push({ grantType: "jwt-bearer", scope: asked, auth: "jwt-bearer", header, claims });
    return mint(res, asked);
  }

  const server = http.createServer((req, res) => {
    app.received++;
    formBody(req)
      .then((body) => (kind === "microsoft" ? microsoft(req, res, body) : google(res, body)))
      .catch((error: unknown) => answer(res, 500, { error: "server_error", error_description: String(error) }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const app: AppIssuer = {
    issuer,
    url,
    env:
      kind === "microsoft" ? { MAILROOM_MICROSOFT_AUTHORITY: url } : { ...issuer.env, MAILROOM_GOOGLE_TOKEN_URL: `${url}/token` },
    checked,
    received: 0,
    certificate: pems.cert,
    privateKey: pems.private,
    serviceAccountKey: JSON.stringify(
      {
        type: "service_account",
        project_id: "mailroom-test",
        private_key_id: "0123456789abcdef",
        private_key: saPem,
        client_email: SA_EMAIL,
        client_id: SA_CLIENT_ID,
        // Never used: Mailroom sends the assertion to the operator's token endpoint only.
        token_uri: "http://127.0.0.1:9/elsewhere",
      },
      null,
      2,
    ),
    delegatedMailboxes: new Set(["sender@example.com"]),
    async stop() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await issuer.stop();
    },
  };
  return app;
}
