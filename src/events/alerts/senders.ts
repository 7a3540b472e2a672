/**
 * Sends one alert to one channel and says what happened. Used by the outbox (with retries)
 * and by "Send test" (once, answered at once).
 */
import type { Principal } from "../../auth/permissions.js";
import type { AppContext } from "../../core/context.js";
import type { EmailServerService } from "../../core/email-servers.js";
import type { MessageService } from "../../core/messages.js";
import { type ErrorCode, errorEntry, MailroomError } from "../../kernel/errors.js";
import { DeliveryError } from "../../kernel/transport.js";
import { postJson } from "../outbound.js";
import { signWebhook } from "../signing.js";
import type { AlertChannels, ChannelRow } from "./channels.js";
import { type Alert, chatBody, emailOf, webhookBody } from "./format.js";

export interface SendOutcome {
  status: "delivered" | "queued" | "failed" | "not_sent";
  /** Whether trying again later may work. */
  retry: boolean;
  error?: { code: ErrorCode; message: string; hint: string };
  /** The receiver's HTTP status, when one answered. */
  responseStatus?: number;
  /** Email: the message queued, and the server it goes through. */
  messageId?: string;
  serverName?: string;
  ms: number;
}

type ServerRow = Awaited<ReturnType<EmailServerService["getRow"]>>;

/** Mailroom itself, sending an alert: a principal limited to the one server chosen. */
function alertsPrincipal(serverId: string): Principal {
  return {
    kind: "token",
    id: "mailroom-alerts",
    label: "Mailroom alerts",
    email: null,
    superAdmin: false,
    permissions: new Set(["messages.send"]),
    serverIds: [serverId],
    userId: null,
  };
}

function failure(code: ErrorCode, message: string, retry: boolean, ms = 0, responseStatus?: number): SendOutcome {
  return {
    status: code === "alert_not_sendable" ? "not_sent" : "failed",
    retry,
    error: { code, message, hint: errorEntry(code).summary },
    ms,
    ...(responseStatus === undefined ? {} : { responseStatus }),
  };
}

/** What a receiver's refusal usually means, by status. */
function refusalHint(status: number): string {
  if (status === 404 || status === 410)
    return "the URL no longer exists at the receiver (a removed Slack or Teams webhook answers so): create a new one and paste it";
  if (status === 401 || status === 403)
    return "the receiver refused it: check what it expects (its signing secret, a token in the URL)";
  if (status >= 300 && status < 400) return "the receiver redirected, which Mailroom never follows: use the final URL";
  if (status === 429) return "the receiver is rate limiting: the alert is tried again later";
  if (status >= 500) return "the receiver failed: the alert is tried again later";
  return "the receiver did not accept the body: check it takes JSON";
}

export class AlertSender {
  constructor(
    private readonly ctx: AppContext,
    private readonly channels: AlertChannels,
    private readonly messages: MessageService,
  ) {}

  /** Sends `alert` to `channel`. `about`: the server the alert is about, never used to carry it. */
  async send(channel: ChannelRow, alert: Alert, about: string | null): Promise<SendOutcome> {
    try {
      if (channel.type === "email") return await this.sendEmail(channel, alert, about);
      return await this.post(channel, alert);
    } catch (err) {
      // The process never dies of a receiver: anything unexpected is a failed try, retried.
      this.ctx.log.error({ err: (err as Error)?.message, channel: channel.name }, "alert could not be sent");
      return failure("internal_error", (err as Error)?.message ?? String(err), true);
    }
  }

  private async post(channel: ChannelRow, alert: Alert): Promise<SendOutcome> {
    const secret = this.channels.secretOf(channel);
    const target = channel.type === "webhook" ? channel.url : secret;
    if (!target || secret === null)
      return failure("validation_failed", "The channel has no URL or secret: edit it and save.", false);
    const now = this.ctx.clock();
    const body = channel.type === "webhook" ? webhookBody(alert, now) : chatBody(alert);
    const headers = channel.type === "webhook" ? { ...signWebhook(secret, alert.id, Math.floor(now / 1000), body) } : {};
    const started = performance.now();
    try {
      const res = await postJson(new URL(target), body, headers, {
        operator: this.ctx.config.operator,
        secrets: channel.type === "slack" ? [secret] : [],
      });
      if (res.status >= 200 && res.status < 300)
        return { status: "delivered", retry: false, responseStatus: res.status, ms: res.ms };
      const said = res.answer ? ` ("${res.answer.slice(0, 200)}")` : "";
      return failure(
        "alert_receiver_error",
        `${channel.url_host} answered HTTP ${res.status}${said}: ${refusalHint(res.status)}.`,
        true,
        res.ms,
        res.status,
      );
    } catch (err) {
      if (!(err instanceof DeliveryError)) throw err;
      const ms = Math.round(performance.now() - started);
      // The operator's fence does not move by itself: trying again would only repeat the refusal.
      return failure(err.code, err.message, err.code !== "endpoint_not_allowed", ms);
    }
  }

  /**
   * Email through the channel's server; if that one is what the alert is about, or cannot
   * send, through the default or another ready server. Never through the server in trouble,
   * nor a Capture server the admin did not choose (it delivers to no one).
   */
  async pickServer(channel: ChannelRow, about: string | null): Promise<{ server: ServerRow } | { problem: string }> {
    const rows = await this.ctx.db.selectFrom("email_servers").selectAll().orderBy("name").execute();
    const chosen = rows.find((r) => r.id === channel.server_id);
    const fallback = rows.filter((r) => r.id !== chosen?.id).sort((a, b) => (b.is_default ?? 0) - (a.is_default ?? 0));
    const usable = (r: ServerRow) => r.status === "ready" && r.id !== about && (r.driver !== "capture" || r.id === chosen?.id);
    const server = [...(chosen ? [chosen] : []), ...fallback].find(usable);
    if (server) return { server };
    const subject = rows.find((r) => r.id === about);
    if (subject && rows.filter((r) => r.driver !== "capture").length <= 1) {
      return {
        problem: `'${subject.name}' is your only server, and an alert about a server is never sent through it: add a second server or a webhook channel.`,
      };
    }
    const names = rows.map((r) => `'${r.name}' ${r.status.replaceAll("_", " ")}`).join(", ");
    return {
      problem: `No other ready email server can carry it (${names || "there is no server"}): add a second server or a webhook channel.`,
    };
  }

  private async sendEmail(channel: ChannelRow, alert: Alert, about: string | null): Promise<SendOutcome> {
    const started = performance.now();
    const picked = await this.pickServer(channel, about);
    if ("problem" in picked) return failure("alert_not_sendable", picked.problem, false);
    const { server } = picked;
    const { subject, text } = emailOf(alert);
    let queued: { id: string };
    try {
      queued = await this.enqueue(server, channel, alert, subject, text);
    } catch (err) {
      if (!(err instanceof MailroomError)) throw err;
      // The database busy or away: later. Anything else (no from address) needs the admin.
      return failure(err.code, `Through '${server.name}': ${err.message}`, err.code.startsWith("storage_"));
    }
    return {
      status: "queued",
      retry: false,
      messageId: queued.id,
      serverName: server.name,
      ms: Math.round(performance.now() - started),
    };
  }

  private enqueue(server: ServerRow, channel: ChannelRow, alert: Alert, subject: string, text: string) {
    return this.messages.enqueue(
      {
        server: server.id,
        to: JSON.parse(channel.recipients ?? "[]") as string[],
        subject: subject.replace(/[\u0000-\u001f\u007f]+/g, " "),
        text,
        // A retry after a crash between queueing and recording finds the same message.
        idempotencyKey: `alert-${alert.id}`,
        tag: "mailroom-alert",
      },
      alertsPrincipal(server.id),
    );
  }
}
