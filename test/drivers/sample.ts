import { randomUUID } from "node:crypto";
import { expect } from "vitest";
import { DeliveryError, type OutgoingMessage } from "../../src/kernel/transport.js";

export const PNG = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
  "base64",
);
export const PDF = Buffer.from("%PDF-1.4\n% Mailroom test \u00e9\u00e8\n%%EOF\n", "utf8");

/**
 * The message every driver test delivers: what tends to break on the way, UTF-8 in the
 * subject and names, text and html, a Bcc, an attachment and an inline image.
 */
export function sampleMessage(overrides: Partial<OutgoingMessage> = {}): OutgoingMessage {
  const id = randomUUID();
  return {
    id,
    messageId: `${id}@mailroom.test`,
    from: { address: "sender@example.com", name: "Zoë Sender" },
    to: [{ address: "rcpt@example.org", name: "Jürgen" }],
    cc: [{ address: "cc@example.org" }],
    bcc: [{ address: "hidden@example.org" }],
    replyTo: [],
    subject: "Grüße aus Zürich — ✉ 日本語",
    text: "Hallo! Ünïcödé text body.\nSecond line.",
    html: '<p>Hallo <b>Welt</b> — ✓</p><img src="cid:logo@mailroom">',
    attachments: [
      { filename: "bericht-ä.pdf", contentType: "application/pdf", content: PDF },
      { filename: "logo.png", contentType: "image/png", content: PNG, contentId: "logo@mailroom" },
    ],
    headers: { "X-Mailroom-Test": "yes" },
    ...overrides,
  };
}

/** The DeliveryError a send failed with (fails the test if it did not fail so). */
export async function sendError(promise: Promise<unknown>): Promise<DeliveryError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DeliveryError);
  return err as DeliveryError;
}
