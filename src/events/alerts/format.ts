/** What an alert says, in each channel's shape: a signed JSON event, a chat line, an email. */
import { iso } from "../../kernel/ids.js";
import { resolvedTitle } from "./conditions.js";
import type { IncidentRow } from "./incidents.js";

export type AlertEvent = "opened" | "resolved" | "test";

/** One alert, whatever the channel: built from an incident (or a test) and the event. */
export interface Alert {
  /** The notification's id: the webhook-id, the same on every retry. */
  id: string;
  event: AlertEvent;
  kind: string;
  title: string;
  detail: string;
  subject: { id: string; name: string } | null;
  incidentId: string | null;
  openedAt: string | null;
  resolvedAt: string | null;
  values: Record<string, unknown>;
  /** Where in Mailroom to look. */
  link: string;
}

export function alertOf(notificationId: string, event: "opened" | "resolved", incident: IncidentRow, publicUrl: string): Alert {
  const subject = incident.subject === "" ? null : { id: incident.subject, name: incident.subject_label };
  const resolved = event === "resolved";
  const since = iso(Number(incident.opened_at));
  return {
    id: notificationId,
    event,
    kind: incident.kind,
    title: resolved ? resolvedTitle(incident.kind, incident.subject_label) : incident.title,
    detail: resolved
      ? `${incident.resolution ?? "The condition ended."} It began ${since?.replace("T", " ").slice(0, 16)} UTC: ${incident.title}.`
      : incident.detail,
    subject,
    incidentId: incident.id,
    openedAt: since,
    resolvedAt: iso(incident.resolved_at === null ? null : Number(incident.resolved_at)),
    values: JSON.parse(incident.last_values) as Record<string, unknown>,
    link: subject ? `${publicUrl}/servers/${subject.id}` : `${publicUrl}/alerts`,
  };
}

export function testAlert(notificationId: string, channelName: string, publicUrl: string, now: number): Alert {
  return {
    id: notificationId,
    event: "test",
    kind: "test",
    title: `Test alert for the channel '${channelName}'`,
    detail: "An admin sent this from Mailroom's Alerts page: the channel works. Real alerts look like this one.",
    subject: null,
    incidentId: null,
    openedAt: iso(now),
    resolvedAt: null,
    values: {},
    link: `${publicUrl}/alerts`,
  };
}

/** The generic webhook's JSON body (signed as sent). */
export function webhookBody(alert: Alert, now: number): string {
  return JSON.stringify({
    type: `alert.${alert.event}`,
    id: alert.id,
    timestamp: iso(now),
    data: {
      kind: alert.kind,
      title: alert.title,
      detail: alert.detail,
      subject: alert.subject ? { type: "email_server", ...alert.subject } : null,
      incidentId: alert.incidentId,
      openedAt: alert.openedAt,
      resolvedAt: alert.resolvedAt,
      values: alert.values,
      link: alert.link,
    },
  });
}

const PREFIX: Record<AlertEvent, string> = {
  opened: "[Mailroom] ALERT",
  resolved: "[Mailroom] RESOLVED",
  test: "[Mailroom] TEST",
};

/** Slack's and Teams' incoming webhooks both take `{"text": …}`. */
export function chatBody(alert: Alert): string {
  return JSON.stringify({ text: `${PREFIX[alert.event]}: ${alert.title}\n${alert.detail}\n${alert.link}` });
}

export function emailOf(alert: Alert): { subject: string; text: string } {
  const lines = [alert.title, "", alert.detail, "", `Open Mailroom: ${alert.link}`];
  if (alert.openedAt && alert.event !== "test") lines.push(`Started: ${alert.openedAt}`);
  if (alert.resolvedAt) lines.push(`Ended: ${alert.resolvedAt}`);
  lines.push("", "Sent by Mailroom's alerts (Alerts page: channels, thresholds, history).");
  return { subject: `${PREFIX[alert.event]}: ${alert.title}`.slice(0, 250), text: lines.join("\n") };
}
