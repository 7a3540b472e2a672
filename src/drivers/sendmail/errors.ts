import { declareDriverErrors } from "../../kernel/errors.js";

/** Sendmail's own codes; README.md beside this file documents each. */
export const sendmailErrors = {
  sendmail_not_found: {
    status: 502,
    summary:
      "The sendmail program does not exist or is not executable: the operator installs it (Postfix, msmtp) or fixes its path in MAILROOM_SENDMAIL_COMMANDS.",
  },
  sendmail_failed: { status: 502, summary: "The sendmail program exited with an error; its output says why." },
  sendmail_command_unknown: {
    status: 409,
    summary:
      "The server's sendmail command is not one the operator declared in MAILROOM_SENDMAIL_COMMANDS: pick a declared command in the server's settings.",
  },
} as const;

export const sendmailCode = declareDriverErrors(sendmailErrors);
