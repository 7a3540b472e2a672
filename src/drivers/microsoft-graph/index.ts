import {
  appOnlyMethodOf,
  authMethodField,
  certificateFields,
  checkAppOnlyTenant,
  checkTenant,
  derivedThumbprint,
  grantFields,
  oauthClientFields,
  tenantField,
} from "../oauth-fields.js";
import type { Driver } from "../types.js";
import { microsoftGraphErrors } from "./errors.js";
import { createGraphTransport, GRAPH_MAIL_SEND } from "./transport.js";

/** Graph's Mail.Send application permission, granted through this scope. */
const appOnly = { methods: ["client_secret" as const, "certificate" as const], scope: "https://graph.microsoft.com/.default" };

export const microsoftGraphDriver: Driver = {
  id: "microsoft-graph",
  label: "Microsoft Graph",
  description:
    "Exchange Online through Microsoft Graph's sendMail API, signed in with OAuth or application credentials (works where SMTP AUTH is turned off).",
  oauthProvider: "microsoft",
  appOnly,
  errors: microsoftGraphErrors,
  // Graph's own scope, not SMTP's: Microsoft answers it without its resource prefix.
  oauthScopes: { request: [GRAPH_MAIL_SEND, "offline_access", "openid", "email"], sending: [GRAPH_MAIL_SEND, "Mail.Send"] },
  // Exchange Online's daily recipient limit.
  defaultMessagesPerDay: 10000,
  example: { tenant: "contoso.onmicrosoft.com", clientId: "11111111-2222-3333-4444-555555555555", clientSecret: "graph-secret" },
  fields: [
    authMethodField(appOnly),
    tenantField,
    ...oauthClientFields(
      "Microsoft Entra (App registrations, API permission Microsoft Graph → Mail.Send: Delegated, or Application for application credentials)",
      { clientIdWith: ["client_secret", "certificate"], secretWith: ["client_secret"] },
    ),
    ...certificateFields("Microsoft Entra"),
    ...grantFields,
  ],
  // The tenant is part of the token endpoint's path: a name or an ID, never a path of its own.
  checkDestinations: checkTenant,
  checkSettings: (settings) => checkAppOnlyTenant(microsoftGraphDriver, settings),
  derive: ({ publicUrl, settings }) => ({
    redirectUri: `${publicUrl}/oauth/microsoft/callback`,
    ...derivedThumbprint(settings),
  }),
  // Graph's address is the operator's (MAILROOM_MICROSOFT_GRAPH_URL), never a setting.
  createTransport: (ctx) => createGraphTransport(ctx, { appOnly: appOnlyMethodOf(microsoftGraphDriver, ctx.settings) !== null }),
};
