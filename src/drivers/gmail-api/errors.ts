import { declareDriverErrors } from "../../kernel/errors.js";

/** The Gmail API's own codes; README.md beside this file documents each. */
export const gmailApiErrors = {
  gmail_api_scope_missing: {
    status: 502,
    summary:
      "The Gmail API refused the token (403 insufficientPermissions): it lacks the gmail.send scope; authorize the account again and allow sending email.",
  },
  gmail_api_not_enabled: {
    status: 502,
    summary:
      "The Gmail API is not enabled in the OAuth client's Google Cloud project (403 accessNotConfigured): enable it under APIs & Services → Library, then retry.",
  },
} as const;

export const gmailApiCode = declareDriverErrors(gmailApiErrors);
