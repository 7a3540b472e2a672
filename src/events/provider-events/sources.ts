/**
 * Each server's sources of provider events, as an admin sets them up on the server's page
 * ("Bounces and deliveries"): the URL to give the provider, and what proves a request came
 * from it. Mailgun's webhook signing key is pasted by the admin (write-only, encrypted).
 * Postmark and SES authenticate with HTTP basic auth whose password Mailroom generates: it
 * is shown once, inside the URL to paste, and stored only as a sha256 hash (a random
 * 192-bit secret needs no slow hash). Setting a source up again replaces its secret.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { Kysely } from "kysely";
import { type Actor, SECRET_CHANGED, writeAudit } from "../../core/audit.js";
import type { AppContext } from "../../core/context.js";
import { MailroomError } from "../../kernel/errors.js";
import { iso } from "../../kernel/ids.js";
import type { Database, EventProvider, EventSourcesTable } from "../../storage/schema.js";
import type { SecretBox } from "../../storage/secrets.js";
import { PROVIDER_LABELS } from "./report.js";

export const EVENT_PROVIDERS: readonly EventProvider[] = ["mailgun", "postmark", "ses"];
const USERNAME = "mailroom";

export interface EventSourceView {
  provider: EventProvider;
  label: string;
  /** Where the provider posts (without credentials). */
  url: string;
  setUp: boolean;
  /** Mailgun: whether a signing key is stored (never the key). */
  signingKey: { set: boolean } | null;
  /** Postmark and SES: the basic-auth user name (the password was shown once). */
  username: string | null;
  /** SES: the SNS topic whose subscription was last confirmed. */
  topicArn: string | null;
  accepted: number;
  /** Events for a message Mailroom does not know (answered 200, so the provider stops retrying). */
  unmatched: number;
  /** Requests refused: a wrong signature or credentials, a replay. */
  refused: number;
  lastEventAt: string | null;
  lastRefusedAt: string | null;
  updatedAt: string | null;
  updatedBy: string | null;
}

/** What setting a source up answers: the view, and for generated credentials the URL to paste, once. */
export interface EventSourceSetup {
  source: EventSourceView;
  credentials: { username: string; password: string; url: string } | null;
}

export function isEventProvider(value: string): value is EventProvider {
  return (EVENT_PROVIDERS as readonly string[]).includes(value);
}

function sha256(value: string): string {
  return createHash("sha256").update(value).digest("hex");
}

export class EventSourceService {
  constructor(private readonly ctx: AppContext) {}

  private get db(): Kysely<Database> {
    return this.ctx.db;
  }

  /** The endpoint of one server's source, from MAILROOM_PUBLIC_URL. */
  urlOf(serverId: string, provider: EventProvider): string {
    return new URL(
      `api/provider-events/${encodeURIComponent(serverId)}/${provider}`,
      `${this.ctx.config.publicUrl.replace(/\/+$/, "")}/`,
    ).href;
  }

  async find(serverId: string, provider: EventProvider): Promise<EventSourcesTable | undefined> {
    return this.db
      .selectFrom("event_sources")
      .selectAll()
      .where("server_id", "=", serverId)
      .where("provider", "=", provider)
      .executeTakeFirst();
  }

  /** Every provider for one server, set up or not. */
  async list(serverId: string): Promise<EventSourceView[]> {
    const rows = await this.db.selectFrom("event_sources").selectAll().where("server_id", "=", serverId).execute();
    return EVENT_PROVIDERS.map((provider) =>
      this.toView(
        serverId,
        provider,
        rows.find((r) => r.provider === provider),
      ),
    );
  }

  /**
   * Sets a source up, or again: Mailgun with the signing key given; Postmark and SES with new
   * basic-auth credentials, answered once. Audited (the secrets as "[secret changed]").
   */
  async setUp(
    serverId: string,
    provider: EventProvider,
    input: { signingKey?: unknown },
    actor: Actor,
  ): Promise<EventSourceSetup> {
    const now = this.ctx.clock();
    let signingKey: string | null = null;
    let password: string | null = null;
    if (provider === "mailgun") {
      const key = typeof input.signingKey === "string" ? input.signingKey.trim() : "";
      if (!/^[\x21-\x7e]{8,200}$/.test(key)) {
        throw new MailroomError(
          "validation_failed",
          "signingKey: paste the domain's HTTP webhook signing key from Mailgun (Sending › Webhooks): 8 to 200 characters, no spaces.",
          [{ field: "signingKey", message: "must be Mailgun's webhook signing key (8 to 200 characters, no spaces)" }],
        );
      }
      signingKey = this.ctx.secrets.encrypt(key);
    } else {
      if (input.signingKey !== undefined) {
        throw new MailroomError("unknown_field", `signingKey: ${PROVIDER_LABELS[provider]} has no signing key; remove it`, [
          { field: "signingKey", message: `is not a setting of ${PROVIDER_LABELS[provider]}; remove it` },
        ]);
      }
      password = randomBytes(24).toString("base64url");
    }
    const existing = await this.find(serverId, provider);
    const values = {
      signing_key: signingKey,
      credential_hash: password ? sha256(password) : null,
      username: password ? USERNAME : null,
      updated_at: now,
      updated_by: actor.label,
    };
    await this.db.transaction().execute(async (trx) => {
      if (existing) {
        await trx
          .updateTable("event_sources")
          .set(values)
          .where("server_id", "=", serverId)
          .where("provider", "=", provider)
          .execute();
      } else {
        await trx
          .insertInto("event_sources")
          .values({
            server_id: serverId,
            provider,
            ...values,
            topic_arn: null,
            accepted: 0,
            unmatched: 0,
            refused: 0,
            created_at: now,
          })
          .execute();
      }
      await writeAudit(
        trx,
        actor,
        {
          action: existing ? "provider_events.source.renew" : "provider_events.source.create",
          targetType: "email_server",
          targetId: serverId,
          after: {
            provider,
            ...(signingKey ? { signingKey: SECRET_CHANGED } : { username: USERNAME, password: SECRET_CHANGED }),
          },
        },
        now,
      );
    });
    const source = this.toView(serverId, provider, await this.find(serverId, provider));
    if (!password) return { source, credentials: null };
    const url = new URL(source.url);
    url.username = USERNAME;
    url.password = password;
    return { source, credentials: { username: USERNAME, password, url: url.href } };
  }

  /** Removes a source: its URL answers provider_events_not_set_up from now on. Audited. */
  async remove(serverId: string, provider: EventProvider, actor: Actor): Promise<void> {
    const now = this.ctx.clock();
    await this.db.transaction().execute(async (trx) => {
      const result = await trx
        .deleteFrom("event_sources")
        .where("server_id", "=", serverId)
        .where("provider", "=", provider)
        .executeTakeFirst();
      if (Number(result.numDeletedRows) === 0) {
        throw new MailroomError(
          "provider_events_not_set_up",
          `This server has no ${PROVIDER_LABELS[provider]} source of events set up.`,
        );
      }
      await writeAudit(
        trx,
        actor,
        { action: "provider_events.source.remove", targetType: "email_server", targetId: serverId, before: { provider } },
        now,
      );
    });
  }

  /** The Mailgun signing key, decrypted for the HMAC. */
  signingKeyOf(source: EventSourcesTable): string | null {
    return source.signing_key ? this.ctx.secrets.decrypt(source.signing_key) : null;
  }

  /** Whether an Authorization header carries the source's basic-auth credentials (compared in constant time). */
  basicAuthMatches(source: EventSourcesTable, authorization: string | undefined): boolean {
    const match = /^Basic\s+([A-Za-z0-9+/=]{1,512})$/i.exec(authorization?.trim() ?? "");
    if (!match || !source.credential_hash || !source.username) return false;
    const decoded = Buffer.from(match[1], "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    const user = decoded.slice(0, colon);
    const given = Buffer.from(sha256(decoded.slice(colon + 1)), "hex");
    const stored = Buffer.from(source.credential_hash, "hex");
    return colon > 0 && user === source.username && given.length === stored.length && timingSafeEqual(given, stored);
  }

  /** Counts what a request brought (one small update per request, not per event). */
  async count(
    trx: Kysely<Database>,
    serverId: string,
    provider: EventProvider,
    accepted: number,
    unmatched: number,
    now: number,
  ): Promise<void> {
    await trx
      .updateTable("event_sources")
      .set((eb) => ({ accepted: eb("accepted", "+", accepted), unmatched: eb("unmatched", "+", unmatched), last_event_at: now }))
      .where("server_id", "=", serverId)
      .where("provider", "=", provider)
      .execute();
  }

  async countRefused(serverId: string, provider: EventProvider, refused: number, now: number): Promise<void> {
    await this.db
      .updateTable("event_sources")
      .set((eb) => ({ refused: eb("refused", "+", refused), last_refused_at: now }))
      .where("server_id", "=", serverId)
      .where("provider", "=", provider)
      .execute();
  }

  async setTopic(serverId: string, topicArn: string | null): Promise<void> {
    await this.db
      .updateTable("event_sources")
      .set({ topic_arn: topicArn })
      .where("server_id", "=", serverId)
      .where("provider", "=", "ses")
      .execute();
  }

  private toView(serverId: string, provider: EventProvider, row: EventSourcesTable | undefined): EventSourceView {
    return {
      provider,
      label: PROVIDER_LABELS[provider],
      url: this.urlOf(serverId, provider),
      setUp: row !== undefined,
      signingKey: provider === "mailgun" ? { set: Boolean(row?.signing_key) } : null,
      username: row?.username ?? null,
      topicArn: row?.topic_arn ?? null,
      accepted: Number(row?.accepted ?? 0),
      unmatched: Number(row?.unmatched ?? 0),
      refused: Number(row?.refused ?? 0),
      lastEventAt: row?.last_event_at == null ? null : iso(Number(row.last_event_at)),
      lastRefusedAt: row?.last_refused_at == null ? null : iso(Number(row.last_refused_at)),
      updatedAt: row ? iso(Number(row.updated_at)) : null,
      updatedBy: row?.updated_by ?? null,
    };
  }
}

/** Re-encrypts the Mailgun signing keys with the box's current key (`mailroom keys rotate`). */
export async function reencryptEventSourceSecrets(trx: Kysely<Database>, box: SecretBox): Promise<number> {
  let count = 0;
  const rows = await trx.selectFrom("event_sources").select(["server_id", "provider", "signing_key"]).execute();
  for (const row of rows) {
    if (row.signing_key === null || !box.isStale(row.signing_key)) continue;
    await trx
      .updateTable("event_sources")
      .set({ signing_key: box.encrypt(box.decrypt(row.signing_key)) })
      .where("server_id", "=", row.server_id)
      .where("provider", "=", row.provider)
      .execute();
    count++;
  }
  return count;
}
