/**
 * Amazon SES notifications (docs.aws.amazon.com/ses, "Amazon SES notification contents" and
 * "event publishing"), the `Message` of an SNS Notification once sns.ts verified it: JSON with
 * `notificationType` (or `eventType` for a configuration set's events) Bounce, Complaint or
 * Delivery, and `mail.messageId`, the id SES's SendEmail answered. One notification can name
 * several recipients: one report each.
 *
 * bounceType Permanent is a hard bounce; Transient and Undetermined are soft.
 */
import type { ProviderReport } from "./report.js";
import {
  cleanAddress,
  cleanText,
  invalidPayload,
  isObject,
  joinTexts,
  normaliseMessageId,
  type ParsedEvents,
  parseTime,
} from "./report.js";

export function parseSesNotification(message: string, snsMessageId: string, now: number): ParsedEvents {
  let json: unknown;
  try {
    json = JSON.parse(message);
  } catch {
    throw invalidPayload("ses", "the SNS message's Message is not SES's JSON");
  }
  if (!isObject(json)) throw invalidPayload("ses", "the SNS message's Message is not SES's JSON");
  const kind = cleanText(json.notificationType ?? json.eventType);
  const mail = isObject(json.mail) ? json.mail : null;
  if (!kind) throw invalidPayload("ses", "the notification has no notificationType");
  if (!["Bounce", "Complaint", "Delivery"].includes(kind)) return { reports: [], ignored: 1 };
  const providerMessageId = normaliseMessageId(mail?.messageId);
  if (!providerMessageId) throw invalidPayload("ses", "the notification has no mail.messageId");

  const reports: ProviderReport[] = [];
  const add = (report: Omit<ProviderReport, "providerMessageId" | "providerEventId">) =>
    reports.push({
      ...report,
      providerMessageId,
      providerEventId: `${snsMessageId}:${report.recipient ?? reports.length}`.slice(0, 200),
    });

  if (kind === "Bounce") {
    const bounce = isObject(json.bounce) ? json.bounce : {};
    const hard = bounce.bounceType === "Permanent";
    const label = [cleanText(bounce.bounceType), cleanText(bounce.bounceSubType)].filter(Boolean).join(": ");
    for (const r of Array.isArray(bounce.bouncedRecipients) ? bounce.bouncedRecipients : []) {
      if (!isObject(r)) continue;
      add({
        type: "bounced",
        bounceKind: hard ? "hard" : "soft",
        recipient: cleanAddress(r.emailAddress),
        diagnostic: joinTexts(r.diagnosticCode, r.status, label),
        at: parseTime(bounce.timestamp, now),
      });
    }
  } else if (kind === "Complaint") {
    const complaint = isObject(json.complaint) ? json.complaint : {};
    for (const r of Array.isArray(complaint.complainedRecipients) ? complaint.complainedRecipients : []) {
      if (!isObject(r)) continue;
      add({
        type: "complained",
        bounceKind: null,
        recipient: cleanAddress(r.emailAddress),
        diagnostic: joinTexts(complaint.complaintFeedbackType, complaint.userAgent),
        at: parseTime(complaint.timestamp, now),
      });
    }
  } else {
    const delivery = isObject(json.delivery) ? json.delivery : {};
    for (const r of Array.isArray(delivery.recipients) ? delivery.recipients : []) {
      add({
        type: "delivered",
        bounceKind: null,
        recipient: cleanAddress(r),
        diagnostic: null,
        at: parseTime(delivery.timestamp, now),
      });
    }
  }
  if (reports.length === 0) throw invalidPayload("ses", `the ${kind} names no recipient`);
  return { reports, ignored: 0 };
}
