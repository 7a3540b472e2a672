import type { OAuthProvider } from "./types.js";
import { emailOrNull } from "./types.js";

const AUTHORITY = "https://login.microsoftonline.com";
const TENANT_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function tenantOf(settings: Record<string, unknown>): string {
  const tenant = typeof settings.tenant === "string" ? settings.tenant.trim() : "";
  return tenant === "" ? "organizations" : tenant;
}

/**
 * Microsoft identity platform (v2.0). SMTP AUTH needs the delegated
 * https://outlook.office.com/SMTP.Send permission; offline_access brings the refresh token,
 * which Microsoft rotates on every refresh. There is no token revocation endpoint.
 */
export const microsoft: OAuthProvider = {
  id: "microsoft",
  label: "Microsoft",
  scopes: ["https://outlook.office.com/SMTP.Send", "offline_access", "openid", "email"],
  smtpScope: "https://outlook.office.com/SMTP.Send",
  endpoints(overrides, settings) {
    // The authority is the cloud's sign-in host (e.g. https://login.microsoftonline.us);
    // the tenant comes from the server's settings.
    const authority = (overrides.microsoftAuthority ?? AUTHORITY).replace(/\/+$/, "");
    const base = `${authority}/${encodeURIComponent(tenantOf(settings))}/oauth2/v2.0`;
    return {
      // ID tokens name the user's own tenant, whatever tenant the request went to.
      issuer: `${authority}/{tenantid}/v2.0`,
      authorization: `${base}/authorize`,
      token: `${base}/token`,
      revocation: null,
      userinfo: null,
    };
  },
  authorizationParameters(loginHint) {
    // select_account lets the admin pick the mailbox rather than whoever is signed in.
    return { prompt: "select_account", ...(loginHint ? { login_hint: loginHint } : {}) };
  },
  refreshParameters(scopes) {
    // One refresh token serves several resources: the scopes say whose token comes back.
    return { scope: scopes.join(" ") };
  },
  acceptsIssuer(claims, endpoints, settings) {
    const tid = claims.tid;
    if (typeof tid !== "string" || !/^[\w.-]+$/.test(tid)) return false;
    const tenant = tenantOf(settings);
    // A server pinned to one directory accepts only accounts of that directory.
    if (TENANT_ID.test(tenant) && tenant.toLowerCase() !== tid.toLowerCase()) return false;
    return claims.iss === endpoints.issuer.replace("{tenantid}", tid);
  },
  accountFrom(claims) {
    // `email` is optional in Entra; the UPN (preferred_username) is the SMTP login otherwise.
    return emailOrNull(claims.email) ?? emailOrNull(claims.preferred_username);
  },
  accessPage: "https://myapps.microsoft.com (or Entra admin center → Enterprise applications → Permissions)",
};
