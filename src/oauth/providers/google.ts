import type { OAuthProvider } from "./types.js";
import { emailOrNull } from "./types.js";

const ISSUER = "https://accounts.google.com";

/**
 * Google: Gmail's SMTP accepts XOAUTH2 only with the full https://mail.google.com/ scope
 * (gmail.send is refused). `access_type=offline` and `prompt=consent` make Google return
 * a refresh token on every authorization, not only the first.
 */
export const google: OAuthProvider = {
  id: "google",
  label: "Google",
  scopes: ["https://mail.google.com/", "openid", "email"],
  smtpScope: "https://mail.google.com/",
  endpoints(overrides) {
    const authorization = overrides.googleAuthUrl ?? "https://accounts.google.com/o/oauth2/v2/auth";
    return {
      // Another issuer (tests, air-gapped installs) names itself by its origin, unless
      // MAILROOM_GOOGLE_ISSUER says otherwise.
      issuer: overrides.googleIssuer ?? (overrides.googleAuthUrl ? new URL(overrides.googleAuthUrl).origin : ISSUER),
      authorization,
      token: overrides.googleTokenUrl ?? "https://oauth2.googleapis.com/token",
      revocation: overrides.googleRevokeUrl ?? "https://oauth2.googleapis.com/revoke",
      userinfo: overrides.googleUserinfoUrl ?? "https://openidconnect.googleapis.com/v1/userinfo",
    };
  },
  authorizationParameters(loginHint) {
    return { access_type: "offline", prompt: "consent", ...(loginHint ? { login_hint: loginHint } : {}) };
  },
  refreshParameters() {
    return {};
  },
  acceptsIssuer(claims, endpoints) {
    // Google documents both spellings of its issuer. It is accepted with overridden
    // endpoints too: an egress proxy in front of Google passes Google's own ID tokens on.
    return claims.iss === ISSUER || claims.iss === "accounts.google.com" || claims.iss === endpoints.issuer;
  },
  accountFrom(claims) {
    if (claims.email_verified === false) return null;
    return emailOrNull(claims.email);
  },
  accessPage: "https://myaccount.google.com/permissions",
};
