import { createSmtpTransport } from "../../transport/smtp.js";
import { grantFields, oauthClientFields } from "../oauth-fields.js";
import { portField, securityField } from "../smtp-fields.js";
import { type Driver, field } from "../types.js";

export const gmailDriver: Driver = {
  id: "gmail",
  label: "Google Gmail",
  description: "Gmail or Google Workspace over SMTP, signed in with OAuth (no app password).",
  oauthProvider: "google",
  // Gmail's daily limit for Workspace accounts (500 for free accounts).
  defaultMessagesPerDay: 2000,
  example: { clientId: "123-abc.apps.googleusercontent.com", clientSecret: "gmail-secret" },
  fields: [
    field({
      key: "host",
      label: "Host",
      type: "host",
      default: "smtp.gmail.com",
      required: true,
      destination: true,
      help: "Google's SMTP server.",
    }),
    portField,
    securityField,
    ...oauthClientFields("Google Cloud (APIs & Services → Credentials, type Web application)"),
    ...grantFields,
  ],
  derive: ({ publicUrl }) => ({ redirectUri: `${publicUrl}/oauth/google/callback` }),
  // SMTP with XOAUTH2; without an authorized account (ctx.tokens) this throws oauth_not_authorized.
  createTransport: (ctx) => createSmtpTransport(ctx, { flavor: "gmail", oauth: true }),
};
