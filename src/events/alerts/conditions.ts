/**
 * What is wrong now: every condition that alerts watch, read from the database at `now`.
 * A condition is identified by its key (kind + subject, and a stage for the client secret's
 * warnings); src/events/alerts/incidents.ts turns the start and end of each into an incident.
 */
import type { Kysely } from "kysely";
import { appOnlyMethodOf } from "../../drivers/oauth-fields.js";
import { findDriver } from "../../drivers/registry.js";
import type { Settings } from "../../kernel/settings.js";
import type { Database } from "../../storage/schema.js";
import type { AlertThresholds } from "./thresholds.js";

export const ALERT_KINDS = [
  "server_failing",
  "reauthorization_required",
  "grant_expiring",
  "client_secret_expiring",
  "held_messages",
  "queue_age",
  "failure_rate",
] as const;
export type AlertKind = (typeof ALERT_KINDS)[number];

export type AlertValues = Record<string, string | number | boolean | null>;

export interface Condition {
  key: string;
  kind: AlertKind;
  /** The server's id, or '' for the whole installation. */
  subject: string;
  subjectLabel: string;
  /** Past the threshold: an incident opens if none is open. */
  opens: boolean;
  /** Still on: an open incident stays open (a little below the threshold, so a value on the edge does not flap). */
  holds: boolean;
  title: string;
  detail: string;
  values: AlertValues;
}

export const DAY_MS = 24 * 60 * 60_000;
const MINUTE_MS = 60_000;
/** An open threshold incident ends once the value falls below this share of the threshold. */
const HYSTERESIS = 0.8;
/** Microsoft ends a refresh token unused for this long. */
const MICROSOFT_IDLE_MS = 90 * DAY_MS;
/** Google ends the grants of an app in "Testing" this long after consent. */
const GOOGLE_TESTING_MS = 7 * DAY_MS;
export const GLOBAL_LABEL = "Mailroom";

const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const inDays = (ms: number) => {
  const days = Math.ceil(ms / DAY_MS);
  if (days <= 0) return "has ended";
  return `ends in ${days} ${days === 1 ? "day" : "days"}`;
};

/** Every condition that is on at `now` (opens or holds). */
export async function currentConditions(db: Kysely<Database>, t: AlertThresholds, now: number): Promise<Condition[]> {
  const [servers, queue] = await Promise.all([serverConditions(db, t, now), queueConditions(db, t, now)]);
  return [...servers, ...queue];
}

async function serverConditions(db: Kysely<Database>, t: AlertThresholds, now: number): Promise<Condition[]> {
  const rows = await db
    .selectFrom("email_servers as s")
    .leftJoin("oauth_tokens as o", "o.server_id", "s.id")
    .select([
      "s.id",
      "s.name",
      "s.driver",
      "s.status",
      "s.fault_detail",
      "s.settings",
      "s.oauth_account",
      "s.oauth_authorized_at",
      "s.oauth_expires_at",
      "o.refreshed_at",
      "o.created_at as token_created_at",
      "o.grant_expires_at",
    ])
    .execute();
  const out: Condition[] = [];
  for (const row of rows) {
    const base = { subject: row.id, subjectLabel: row.name };
    const on = (kind: AlertKind, title: string, detail: string, values: AlertValues, stage = "") =>
      out.push({ key: `${kind}:${row.id}${stage}`, kind, ...base, opens: true, holds: true, title, detail, values });

    if (row.status === "failing") {
      on(
        "server_failing",
        `Email server '${row.name}' is failing`,
        `${row.fault_detail ?? "Its last attempts failed for a reason of the server's."} Its mail is held and only probes reach it until one passes: check its settings and use "Check now" on its page.`,
        { status: row.status },
      );
    }
    if (row.status === "reauthorization_required") {
      on(
        "reauthorization_required",
        `Email server '${row.name}' needs its account authorized again`,
        `${row.fault_detail ?? "The account's authorization was revoked or expired."} Open the server and use "Authorize account"; its held mail then goes out.`,
        { status: row.status },
      );
    }
    const driver = findDriver(row.driver);
    if (!driver?.oauthProvider) continue;
    const settings = JSON.parse(row.settings) as Settings;
    const delegated = appOnlyMethodOf(driver, settings) === null;

    // The grant's end: what the provider said, Google's 7 days in Testing, Microsoft's 90 idle days.
    if (delegated && row.oauth_account !== null && row.status !== "reauthorization_required") {
      const ends: { at: number; warnDays: number | null; why: string }[] = [];
      const said = row.grant_expires_at ?? row.oauth_expires_at;
      const google = driver.oauthProvider === "google";
      if (said !== null) {
        ends.push({
          at: Number(said),
          warnDays: google ? t.googleTestingWarnDays : t.microsoftIdleWarnDays,
          why: "the provider said when it ends",
        });
      }
      if (google && settings.publishingStatus === "testing" && row.oauth_authorized_at !== null) {
        ends.push({
          at: Number(row.oauth_authorized_at) + GOOGLE_TESTING_MS,
          warnDays: t.googleTestingWarnDays,
          why: 'the Google app is in "Testing", whose authorizations end 7 days after they are given (publish the app to stop this)',
        });
      }
      if (driver.oauthProvider === "microsoft") {
        const used = row.refreshed_at ?? row.token_created_at ?? row.oauth_authorized_at;
        if (used !== null) {
          ends.push({
            at: Number(used) + MICROSOFT_IDLE_MS,
            warnDays: t.microsoftIdleWarnDays,
            why: `Microsoft ends a refresh token unused for 90 days, and Mailroom last used it on ${day(Number(used))} (is the daily OAuth check running?)`,
          });
        }
      }
      const due = ends.filter((e) => e.warnDays !== null && e.at - now <= e.warnDays * DAY_MS).sort((a, b) => a.at - b.at);
      if (due.length) {
        const first = due[0];
        on(
          "grant_expiring",
          `The authorization of '${row.name}' ${inDays(first.at - now)} (${day(first.at)})`,
          `It ends then because ${first.why}. Open the server and use "Authorize account" before then, or its mail will be held.`,
          { endsAt: new Date(first.at).toISOString(), account: row.oauth_account },
        );
      }
    }

    // The client secret's end date, as the admin entered it: one warning per stage (30, then 7 days).
    const endsOn =
      typeof settings.credentialExpiresOn === "string" ? Date.parse(`${settings.credentialExpiresOn}T00:00:00Z`) : NaN;
    if (!Number.isNaN(endsOn)) {
      for (const stage of t.clientSecretWarnDays) {
        if (endsOn - now > stage * DAY_MS) continue;
        on(
          "client_secret_expiring",
          `The client secret of '${row.name}' ${inDays(endsOn - now)} (${day(endsOn)})`,
          `Create a new client secret where the OAuth client is registered, enter it in the server's settings with its new end date. Warned ${stage} days before.`,
          { endsOn: day(endsOn), stage },
          `:${stage}d`,
        );
      }
    }
  }
  return out;
}

async function queueConditions(db: Kysely<Database>, t: AlertThresholds, now: number): Promise<Condition[]> {
  const out: Condition[] = [];
  const global = { subject: "", subjectLabel: GLOBAL_LABEL };
  if (t.heldMessages !== null) {
    const held = await db
      .selectFrom("messages")
      .select(["server_name", (eb) => eb.fn.countAll<number>().as("n")])
      .where("status", "=", "held")
      .groupBy("server_name")
      .execute();
    const total = held.reduce((sum, r) => sum + Number(r.n), 0);
    if (total >= t.heldMessages * HYSTERESIS) {
      const by = [...held].sort((a, b) => Number(b.n) - Number(a.n)).slice(0, 5);
      out.push({
        key: "held_messages",
        kind: "held_messages",
        ...global,
        opens: total >= t.heldMessages,
        holds: true,
        title: `${total} messages are held`,
        detail: `Held by server: ${by.map((r) => `${r.server_name} ${Number(r.n)}`).join(", ")}. Held mail waits for its server (failing, or needing an authorization or a setting): fix the server and it goes out. Threshold: ${t.heldMessages}.`,
        values: { held: total, threshold: t.heldMessages },
      });
    }
  }
  if (t.queueAgeMinutes !== null) {
    const oldest = await db
      .selectFrom("messages")
      .select(["id", "server_name", "created_at", "last_error"])
      .where("status", "in", ["queued", "sending"])
      .orderBy("created_at")
      .limit(1)
      .executeTakeFirst();
    const minutes = oldest ? Math.floor((now - Number(oldest.created_at)) / MINUTE_MS) : 0;
    if (oldest && minutes >= t.queueAgeMinutes * HYSTERESIS) {
      out.push({
        key: "queue_age",
        kind: "queue_age",
        ...global,
        opens: minutes >= t.queueAgeMinutes,
        holds: true,
        title: `The oldest queued message has waited ${minutes} minutes`,
        detail: `Message ${oldest.id} through '${oldest.server_name}' is still queued${oldest.last_error ? ` (last error: ${oldest.last_error.slice(0, 200)})` : ""}. Check that a worker runs and the server accepts mail. Threshold: ${t.queueAgeMinutes} minutes.`,
        values: { minutes, messageId: oldest.id, threshold: t.queueAgeMinutes },
      });
    }
  }
  if (t.failureRatePercent !== null) {
    const since = now - t.failureRateWindowMinutes * MINUTE_MS;
    const [failed, sent] = await Promise.all([
      db
        .selectFrom("messages")
        .select((eb) => eb.fn.countAll<number>().as("n"))
        .where("status", "=", "failed")
        .where("updated_at", ">=", since)
        .where("is_test", "=", 0)
        .executeTakeFirstOrThrow(),
      db
        .selectFrom("messages")
        .select((eb) => eb.fn.countAll<number>().as("n"))
        .where("sent_at", ">=", since)
        .where("is_test", "=", 0)
        .executeTakeFirstOrThrow(),
    ]);
    const f = Number(failed.n);
    const total = f + Number(sent.n);
    const percent = total === 0 ? 0 : Math.round((f / total) * 1000) / 10;
    if (total >= t.failureRateMinMessages && percent >= t.failureRatePercent * HYSTERESIS) {
      out.push({
        key: "failure_rate",
        kind: "failure_rate",
        ...global,
        opens: percent >= t.failureRatePercent,
        holds: true,
        title: `${percent}% of messages failed in the last ${t.failureRateWindowMinutes} minutes`,
        detail: `${f} of ${total} finished messages failed (threshold ${t.failureRatePercent}%). The delivery log filtered by "failed" shows why: recipients refused, or a server's permanent errors.`,
        values: { percent, failed: f, finished: total, threshold: t.failureRatePercent },
      });
    }
  }
  return out;
}

/** What the recovery says, by kind. */
export function resolvedTitle(kind: string, label: string): string {
  switch (kind) {
    case "server_failing":
      return `Email server '${label}' is sending again`;
    case "reauthorization_required":
      return `Email server '${label}' is authorized again`;
    case "grant_expiring":
      return `The authorization of '${label}' no longer ends soon`;
    case "client_secret_expiring":
      return `The client secret of '${label}' no longer ends soon`;
    case "held_messages":
      return "Held messages are back under the threshold";
    case "queue_age":
      return "The queue is moving again";
    case "failure_rate":
      return "The failure rate is back under the threshold";
    default:
      return `Resolved: ${kind}`;
  }
}
