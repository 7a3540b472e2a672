/**
 * One webhook request from a provider, from its arrival to its answer: the server's source
 * (none: provider_events_not_set_up), the provider's proof (Mailgun's HMAC and its 15-minute
 * window, Postmark's and SES's basic auth, SNS's signature), then the body. A refused proof is
 * audited (refusals.ts) and answered 401 with a stable code; a proof that passes reaches the
 * parser, and what it reports is stored (ingest.ts). Nothing is parsed before the proof.
 */
import { writeAudit } from "../../core/audit.js";
import type { AppContext } from "../../core/context.js";
import { MailroomError } from "../../kernel/errors.js";
import type { EventProvider } from "../../storage/schema.js";
import type { SuppressionService } from "../suppressions.js";
import { type IngestResult, ProviderEventIngest, ReplayedToken } from "./ingest.js";
import { mailgunSignatureOf, parseMailgun, verifyMailgun } from "./mailgun.js";
import { parsePostmark } from "./postmark.js";
import { RefusalLog } from "./refusals.js";
import { PROVIDER_LABELS } from "./report.js";
import { parseSesNotification } from "./ses.js";
import { parseSnsMessage, type SnsMessage, SnsVerifier } from "./sns.js";
import { EventSourceService } from "./sources.js";

export interface WebhookRequest {
  body: unknown;
  authorization: string | undefined;
  ip: string;
}

export interface ProviderEventReceipt extends IngestResult {
  /** SES: what an SNS subscription message did. */
  subscription: "confirmed" | "unsubscribed" | null;
}

/** Codes of a refused proof: audited and counted. */
const AUDITED = new Set(["provider_event_unauthorized", "provider_event_replayed", "sns_certificate_refused"]);

export class ProviderEventReceiver {
  readonly sources: EventSourceService;
  readonly sns: SnsVerifier;
  private readonly ingest: ProviderEventIngest;
  private readonly refusals: RefusalLog;

  constructor(
    private readonly ctx: AppContext,
    suppressions: SuppressionService,
  ) {
    this.sources = new EventSourceService(ctx);
    this.sns = new SnsVerifier(ctx.config.operator, ctx.clock);
    this.ingest = new ProviderEventIngest(ctx, this.sources, suppressions);
    this.refusals = new RefusalLog(ctx, this.sources);
  }

  async receive(serverId: string, provider: EventProvider, request: WebhookRequest): Promise<ProviderEventReceipt> {
    const source = await this.sources.find(serverId, provider);
    if (!source) {
      throw new MailroomError(
        "provider_events_not_set_up",
        `This server has no ${PROVIDER_LABELS[provider]} source of events: set it up under the server's 'Bounces and deliveries'.`,
      );
    }
    try {
      if (provider === "mailgun") return await this.mailgun(serverId, request, this.sources.signingKeyOf(source) ?? "");
      // Postmark and SES: HTTP basic auth first. SNS sends none until challenged: no audit for that.
      if (!request.authorization) {
        throw new MailroomError(
          "provider_event_unauthorized",
          "Send the credentials of the webhook URL Mailroom showed (HTTP basic auth).",
        );
      }
      if (!this.sources.basicAuthMatches(source, request.authorization)) {
        throw Object.assign(
          new MailroomError(
            "provider_event_unauthorized",
            "The basic-auth credentials are wrong: set the source up again under the server's 'Bounces and deliveries' and paste the new URL.",
          ),
          { audit: true },
        );
      }
      if (provider === "postmark") {
        const parsed = parsePostmark(request.body, this.ctx.clock());
        return { ...(await this.ingest.store(serverId, "postmark", parsed.reports, parsed.ignored)), subscription: null };
      }
      return await this.ses(serverId, request);
    } catch (error) {
      const code = (error as MailroomError).code;
      const audit =
        error instanceof MailroomError && AUDITED.has(code) && (provider === "mailgun" || (error as { audit?: boolean }).audit);
      if (audit) await this.refusals.refused(serverId, provider, code, request.ip);
      throw error;
    }
  }

  private async mailgun(serverId: string, request: WebhookRequest, signingKey: string): Promise<ProviderEventReceipt> {
    const signature = mailgunSignatureOf(request.body);
    const now = this.ctx.clock();
    verifyMailgun(signature, signingKey, now);
    const parsed = parseMailgun(request.body, now);
    try {
      const result = await this.ingest.store(
        serverId,
        "mailgun",
        parsed.reports,
        parsed.ignored,
        `mailgun:${serverId}:${signature.token}`,
      );
      return { ...result, subscription: null };
    } catch (error) {
      if (!(error instanceof ReplayedToken)) throw error;
      throw new MailroomError("provider_event_replayed", "This Mailgun signature's token was used already: refused as a replay.");
    }
  }

  private async ses(serverId: string, request: WebhookRequest): Promise<ProviderEventReceipt> {
    const message = parseSnsMessage(request.body);
    try {
      await this.sns.verify(message);
    } catch (error) {
      throw Object.assign(error as Error, { audit: true });
    }
    const none = { accepted: 0, duplicates: 0, unmatched: 0, ignored: 0 };
    if (message.Type === "Notification") {
      const parsed = parseSesNotification(message.Message, message.MessageId, this.ctx.clock());
      return { ...(await this.ingest.store(serverId, "ses", parsed.reports, parsed.ignored)), subscription: null };
    }
    if (message.Type === "SubscriptionConfirmation") {
      await this.sns.confirm(message);
      await this.sources.setTopic(serverId, message.TopicArn);
      await this.recordSubscription(serverId, message, "provider_events.ses.subscribed", request.ip);
      return { ...none, subscription: "confirmed" };
    }
    const source = await this.sources.find(serverId, "ses");
    if (source?.topic_arn === message.TopicArn) await this.sources.setTopic(serverId, null);
    await this.recordSubscription(serverId, message, "provider_events.ses.unsubscribed", request.ip);
    return { ...none, subscription: "unsubscribed" };
  }

  private async recordSubscription(serverId: string, message: SnsMessage, action: string, ip: string): Promise<void> {
    await writeAudit(
      this.ctx.db,
      { type: "system", id: null, label: "provider:ses", ip },
      { action, targetType: "email_server", targetId: serverId, after: { topicArn: message.TopicArn } },
      this.ctx.clock(),
    );
    this.ctx.log.info({ serverId, topicArn: message.TopicArn, type: message.Type }, "provider events: SNS subscription message");
  }
}
