import {
  appOnlyMethodOf,
  authMethodField,
  grantFields,
  oauthClientFields,
  publishingStatusField,
  serviceAccountKeyField,
} from "../oauth-fields.js";
import type { Driver } from "../types.js";
import { gmailApiErrors } from "./errors.js";
import { createGmailApiTransport, GMAIL_SEND } from "./transport.js";

/** A service account impersonating the from mailbox needs only gmail.send, as a person does. */
const appOnly = { methods: ["service_account" as const], scope: GMAIL_SEND };

export const gmailApiDriver: Driver = {
  id: "gmail-api",
  label: "Gmail API",
  description:
    "Gmail or Google Workspace through the Gmail API (users.messages.send), signed in with OAuth or a service account.",
  oauthProvider: "google",
  appOnly,
  errors: gmailApiErrors,
  // gmail.send only (sensitive, not restricted): no read access, so the check proves the token, a send the mailbox.
  oauthScopes: { request: [GMAIL_SEND, "openid", "email"], sending: [GMAIL_SEND] },
  // Gmail's daily limit for Workspace accounts (500 for free accounts).
  defaultMessagesPerDay: 2000,
  example: { clientId: "123-abc.apps.googleusercontent.com", clientSecret: "gmail-api-secret" },
  fields: [
    authMethodField(appOnly),
    ...oauthClientFields("Google Cloud (APIs & Services → Credentials, type Web application; enable the Gmail API)"),
    serviceAccountKeyField,
    publishingStatusField,
    ...grantFields,
  ],
  derive: ({ publicUrl }) => ({ redirectUri: `${publicUrl}/oauth/google/callback` }),
  // The Gmail API's address is the operator's (MAILROOM_GOOGLE_GMAIL_API_URL), never a setting.
  createTransport: (ctx) => createGmailApiTransport(ctx, { appOnly: appOnlyMethodOf(gmailApiDriver, ctx.settings) !== null }),
};
