import { isHost } from "../../kernel/validate.js";
import { createSmtpTransport, type LoginRejection } from "../../transport/smtp.js";
import { grantFields, oauthClientFields } from "../oauth-fields.js";
import { portField, securityField } from "../smtp-fields.js";
import { type Driver, field } from "../types.js";

/** Microsoft 365 refuses an XOAUTH2 login when SMTP AUTH is off for the mailbox. */
export const MICROSOFT365_LOGIN_REJECTED: LoginRejection = {
  code: "smtp_auth_failed",
  message: (where, who) =>
    `${where} rejected the login${who} with its access token: check that SMTP AUTH is enabled for the mailbox and the from address is the authorized account.`,
};

export const microsoft365Driver: Driver = {
  id: "microsoft365",
  label: "Microsoft 365",
  description: "Exchange Online over SMTP, signed in with OAuth (SMTP AUTH must be enabled for the mailbox).",
  oauthProvider: "microsoft",
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
    field({
      key: "tenant",
      label: "Tenant",
      type: "text",
      default: "organizations",
      required: true,
      destination: true,
      help: "Your directory (tenant) ID or domain, or 'organizations' for any work account.",
    }),
    ...oauthClientFields("Microsoft Entra (App registrations)"),
    ...grantFields,
  ],
  // The tenant is part of the token endpoint's path: a name or an ID, never a path of its own.
  checkDestinations: (settings) => {
    const tenant = String(settings.tenant ?? "");
    return tenant === "" || (isHost(tenant) && !tenant.includes(":"))
      ? []
      : [
          {
            field: "settings.tenant",
            message: "must be a tenant ID, a domain such as contoso.onmicrosoft.com, or organizations",
          },
        ];
  },
  derive: ({ publicUrl }) => ({ redirectUri: `${publicUrl}/oauth/microsoft/callback` }),
  // SMTP with XOAUTH2; without an authorized account (ctx.tokens) this throws oauth_not_authorized.
  createTransport: (ctx) => createSmtpTransport(ctx, { loginRejected: MICROSOFT365_LOGIN_REJECTED, oauth: true }),
};
