/**
 * Postmark's webhooks (postmarkapp.com/developer/webhooks): one JSON event per request, told
 * apart by RecordType. Postmark authenticates with HTTP basic auth, the credentials Mailroom
 * generated being part of the webhook URL the admin pastes (sources.ts checks them).
 *
 * Kept: "Delivery"; "Bounce" (Type HardBounce, BadEmailAddress, ManuallyDeactivated: hard;
 * SoftBounce, Transient, DnsError, Blocked and the like: soft; auto-replies and subscription
 * notices are not bounces); "SpamComplaint". Opens, clicks and the rest are ignored.
 */
import type { ProviderEventType } from "../../storage/schema.js";
import {
  cleanAddress,
  cleanId,
  cleanText,
  invalidPayload,
  isObject,
  joinTexts,
  normaliseMessageId,
  type ParsedEvents,
  parseTime,
} from "./report.js";

const HARD = new Set(["HardBounce", "BadEmailAddress", "ManuallyDeactivated"]);
/** Bounce types that say nothing about delivery (an out-of-office reply, a subscribe request). */
const NOT_A_BOUNCE = new Set(["AutoResponder", "AddressChange", "Subscribe", "Unsubscribe", "OpenRelayTest", "InboundError"]);

export function parsePostmark(body: unknown, now: number): ParsedEvents {
  if (!isObject(body) || typeof body.RecordType !== "string") throw invalidPayload("postmark", "it has no RecordType");
  const record = body.RecordType;
  let type: ProviderEventType;
  let bounceKind: "hard" | "soft" | null = null;
  if (record === "Delivery") type = "delivered";
  else if (record === "SpamComplaint") type = "complained";
  else if (record === "Bounce") {
    const kind = cleanText(body.Type) ?? "";
    if (NOT_A_BOUNCE.has(kind)) return { reports: [], ignored: 1 };
    type = "bounced";
    bounceKind = HARD.has(kind) ? "hard" : "soft";
  } else return { reports: [], ignored: 1 };

  const providerMessageId = normaliseMessageId(body.MessageID);
  if (!providerMessageId) throw invalidPayload("postmark", `the ${record} has no MessageID`);
  const recipient = cleanAddress(type === "delivered" ? body.Recipient : body.Email);
  // Bounces and complaints carry Postmark's own ID; a delivery has none: its message, recipient and time say which it is.
  const at = parseTime(type === "delivered" ? body.DeliveredAt : body.BouncedAt, now);
  const providerEventId = cleanId(body.ID) ?? `${record}:${providerMessageId}:${recipient ?? ""}:${at}`;
  return {
    reports: [
      {
        providerEventId: `${record}:${providerEventId}`.slice(0, 200),
        providerMessageId,
        type,
        bounceKind,
        recipient,
        diagnostic: type === "delivered" ? null : joinTexts(body.Type, body.Details, body.Description),
        at,
      },
    ],
    ignored: 0,
  };
}
