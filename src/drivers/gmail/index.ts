import { createSmtpTransport, type LoginRejection } from "../../transport/smtp.js";
import {
  authMethodField,
  grantFields,
  oauthClientFields,
  publishingStatusField,
  serviceAccountKeyField,
} from "../oauth-fields.js";
import { portField, securityField } from "../smtp-fields.js";
import { type Driver, field } from "../types.js";
import { gmailCode, gmailErrors } from "./errors.js";

/** Gmail's 535 to an XOAUTH2 login has its own code and fix. */
export const GMAIL_LOGIN_REJECTED: LoginRejection = {
  code: gmailCode.gmail_credentials_rejected,
  message: (_where, who) => `Gmail rejected the login${who || " of the account"} with its access token.`,
};

/** Gmail's SMTP takes XOAUTH2 only with the full mail scope, for users and service accounts alike. */
const appOnly = { methods: ["service_account" as const], scope: "https://mail.google.com/" };

export const gmailDriver: Driver = {
  id: "gmail",
  label: "Google Gmail",
  description: "Gmail or Google Workspace over SMTP, signed in with OAuth (no app password).",
  errors: gmailErrors,
  oauthProvider: "google",
  appOnly,
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
    authMethodField(appOnly),
    ...oauthClientFields("Google Cloud (APIs & Services → Credentials, type Web application)"),
    serviceAccountKeyField,
    publishingStatusField,
    ...grantFields,
  ],
  derive: ({ publicUrl }) => ({ redirectUri: `${publicUrl}/oauth/google/callback` }),
  // SMTP with XOAUTH2; without an authorized account (ctx.tokens) this throws oauth_not_authorized.
  createTransport: (ctx) => createSmtpTransport(ctx, { loginRejected: GMAIL_LOGIN_REJECTED, oauth: true }),
};
