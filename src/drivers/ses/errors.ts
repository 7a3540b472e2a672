import { declareDriverErrors } from "../../kernel/errors.js";

/** Amazon SES's own codes; README.md beside this file documents each. */
export const sesErrors = {
  ses_email_not_verified: {
    status: 502,
    summary:
      "SES has not verified the from address or domain (MessageRejected): verify it in the SES console, and in the sandbox the recipient too.",
  },
  ses_message_rejected: { status: 502, summary: "SES rejected the message; the response says why." },
} as const;

export const sesCode = declareDriverErrors(sesErrors);
