/**
 * The SMTP replies Mailroom chooses itself, with their enhanced status codes (RFC 3463).
 * docs/smtp.md explains each to the people who read them in an application's log.
 */
import { MailroomError } from "../../kernel/errors.js";

/** An error smtp-server answers with `code` and a text that starts with its enhanced code. */
export class SmtpReply extends Error {
  constructor(
    readonly responseCode: number,
    readonly enhanced: string,
    text: string,
  ) {
    super(`${enhanced} ${text}`);
    this.name = "SmtpReply";
  }
}

/** A reply text that already carries its enhanced code: smtp-server must not add another. */
export const STARTS_WITH_ENHANCED_CODE = /^[245]\.\d{1,3}\.\d{1,3} /;

export const replies = {
  authRequired: () =>
    new SmtpReply(
      530,
      "5.7.0",
      "Authentication required: log in (AUTH PLAIN or LOGIN, after STARTTLS) with a Mailroom API token",
    ),
  badToken: () =>
    new SmtpReply(
      535,
      "5.7.8",
      "Authentication failed: the password must be a Mailroom API token (mrt_...) that is not revoked or expired",
    ),
  cannotSend: () => new SmtpReply(535, "5.7.8", "Authentication failed: this API token lacks the messages.send permission"),
  tooManyFailures: (minutes: number) =>
    new SmtpReply(454, "4.7.0", `Too many failed logins from your address; try again in ${minutes} minute(s)`),
  tooManyConnections: (max: number) =>
    new SmtpReply(421, "4.7.0", `Too many connections from your address (at most ${max}); close one and try again`),
  authUnavailable: () => new SmtpReply(454, "4.7.0", "Mailroom cannot check tokens right now; try again shortly"),
  noFrom: () => new SmtpReply(550, "5.6.0", "The message has no From header; add one the email server may send as"),
  policy: (text: string) => new SmtpReply(550, "5.7.1", text),
  tooBig: (max: number) => new SmtpReply(552, "5.3.4", `The message is larger than ${max} bytes (SIZE); send a smaller one`),
  storeFailed: (why: string) => new SmtpReply(451, "4.3.0", `Mailroom could not store the message (${why}); try again later`),
};

/** The reply for an error while routing or storing: a refusal for policy, else "try again". */
export function replyForError(error: unknown): SmtpReply {
  if (error instanceof SmtpReply) return error;
  if (error instanceof MailroomError) {
    if (error.code === "from_not_allowed" || error.code === "server_not_allowed" || error.code === "recipient_suppressed") {
      return replies.policy(error.message);
    }
    if (error.code === "email_server_not_found") return replies.storeFailed(error.message.replace(/\.$/, ""));
    return replies.storeFailed(error.code);
  }
  return replies.storeFailed("the database is busy or unavailable");
}
