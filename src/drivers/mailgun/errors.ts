import { declareDriverErrors } from "../../kernel/errors.js";

/** Mailgun's own codes; README.md beside this file documents each. */
export const mailgunErrors = {
  mailgun_domain_not_found: {
    status: 502,
    summary: "Mailgun does not know this sending domain in this region: check the domain and the region (US or EU).",
  },
} as const;

export const mailgunCode = declareDriverErrors(mailgunErrors);
