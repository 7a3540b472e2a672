import { declareDriverErrors } from "../../kernel/errors.js";

/** Postmark's own codes; README.md beside this file documents each. */
export const postmarkErrors = {
  postmark_sender_not_confirmed: {
    status: 502,
    summary:
      "Postmark has no confirmed sender signature for the from address (422): confirm it or verify the domain in Postmark.",
  },
} as const;

export const postmarkCode = declareDriverErrors(postmarkErrors);
