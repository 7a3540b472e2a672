import type { SendMailOptions } from "nodemailer";
import MailComposer from "nodemailer/lib/mail-composer";
import type { Address, OutgoingMessage } from "../kernel/transport.js";

function addresses(list: Address[]): { name: string; address: string }[] {
  return list.map((a) => ({ name: a.name ?? "", address: a.address }));
}

/**
 * The nodemailer form of a message, for every driver that sends through nodemailer or
 * needs raw MIME. Attachments are only ever in-memory content: file and URL access stay off,
 * so a message can never make Mailroom read a local file or fetch a URL.
 */
export function toNodemailerMail(message: OutgoingMessage): SendMailOptions {
  if (message.raw) {
    // nodemailer sends `raw` byte for byte; the envelope (Bcc included) travels beside it.
    return { raw: message.raw, envelope: { from: message.from.address, to: envelopeRecipients(message) } };
  }
  return {
    messageId: `<${message.messageId}>`,
    from: { name: message.from.name ?? "", address: message.from.address },
    to: addresses(message.to),
    cc: addresses(message.cc),
    bcc: addresses(message.bcc),
    replyTo: message.replyTo.length ? addresses(message.replyTo) : undefined,
    subject: message.subject,
    text: message.text,
    html: message.html,
    headers: message.headers,
    attachments: message.attachments.map((a) => ({
      filename: a.filename,
      contentType: a.contentType,
      content: a.content,
      cid: a.contentId,
    })),
    disableFileAccess: true,
    disableUrlAccess: true,
  };
}

/**
 * The full RFC 5322 message as bytes (Bcc kept out of the headers); a raw message's own bytes.
 * `keepBcc`: for providers that take their recipients from the headers and remove Bcc
 * themselves (the Gmail API, Microsoft Graph); a raw message's blind recipients (the
 * envelope's, in no header) are then prepended as a Bcc header.
 */
export async function buildMime(message: OutgoingMessage, options: { keepBcc?: boolean } = {}): Promise<Buffer> {
  if (message.raw) {
    if (!options.keepBcc || message.bcc.length === 0) return message.raw;
    // Addresses were checked at intake: no CR, LF or comma can end the header early.
    return Buffer.concat([Buffer.from(`Bcc: ${message.bcc.map((a) => a.address).join(", ")}\r\n`), message.raw]);
  }
  const composer = new MailComposer(toNodemailerMail(message) as ConstructorParameters<typeof MailComposer>[0]);
  const node = composer.compile();
  if (options.keepBcc) node.keepBcc = true;
  return node.build();
}

/** Every recipient address, for envelopes (to, cc and bcc). */
export function envelopeRecipients(message: OutgoingMessage): string[] {
  return [...message.to, ...message.cc, ...message.bcc].map((a) => a.address);
}
