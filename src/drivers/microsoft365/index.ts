import { createSmtpTransport, type LoginRejection } from "../../transport/smtp.js";
import {
  authMethodField,
  certificateFields,
  checkAppOnlyTenant,
  checkTenant,
  derivedThumbprint,
  grantFields,
  oauthClientFields,
  tenantField,
} from "../oauth-fields.js";
import { portField, securityField } from "../smtp-fields.js";
import { type Driver, field } from "../types.js";

/** Microsoft 365 refuses an XOAUTH2 login when SMTP AUTH is off for the mailbox. */
export const MICROSOFT365_LOGIN_REJECTED: LoginRejection = {
  code: "smtp_auth_failed",
  message: (where, who) =>
    `${where} rejected the login${who} with its access token: check that SMTP AUTH is enabled for the mailbox and the from address is the authorized account.`,
};

/** Exchange Online's SMTP with the app's own token: SMTP.SendAsApp, granted through this scope. */
const appOnly = { methods: ["client_secret" as const, "certificate" as const], scope: "https://outlook.office365.com/.default" };

export const microsoft365Driver: Driver = {
  id: "microsoft365",
  label: "Microsoft 365",
  description: "Exchange Online over SMTP, signed in with OAuth (SMTP AUTH must be enabled for the mailbox).",
  oauthProvider: "microsoft",
  appOnly,
  // Exchange Online's daily recipient limit.
  defaultMessagesPerDay: 10000,
  example: { tenant: "contoso.onmicrosoft.com", clientId: "11111111-2222-3333-4444-555555555555", clientSecret: "ms-secret" },
  fields: [
    field({
      key: "host",
      label: "Host",
      type: "host",
      default: "smtp.office365.com",
      required: true,
      destination: true,
      help: "Microsoft's SMTP server.",
    }),
    portField,
    securityField,
    authMethodField(appOnly),
    tenantField,
    ...oauthClientFields("Microsoft Entra (App registrations)", {
      clientIdWith: ["client_secret", "certificate"],
      secretWith: ["client_secret"],
    }),
    ...certificateFields("Microsoft Entra"),
    ...grantFields,
  ],
  // The tenant is part of the token endpoint's path: a name or an ID, never a path of its own.
  checkDestinations: checkTenant,
  checkSettings: (settings) => checkAppOnlyTenant(microsoft365Driver, settings),
  derive: ({ publicUrl, settings }) => ({
    redirectUri: `${publicUrl}/oauth/microsoft/callback`,
    ...derivedThumbprint(settings),
  }),
  // SMTP with XOAUTH2; without an authorized account (ctx.tokens) this throws oauth_not_authorized.
  createTransport: (ctx) => createSmtpTransport(ctx, { loginRejected: MICROSOFT365_LOGIN_REJECTED, oauth: true }),
};
