import { declareDriverErrors } from "../../kernel/errors.js";

/** Gmail's own codes; README.md beside this file documents each. */
export const gmailErrors = {
  gmail_credentials_rejected: {
    status: 502,
    summary:
      "Gmail rejected the login (535 5.7.8 Username and Password not accepted): re-authorize the account, and check that the from address is the authorized account.",
  },
} as const;

export const gmailCode = declareDriverErrors(gmailErrors);
