import { type OperatorPolicy, STRICT_OPERATOR } from "../../kernel/operator-policy.js";
import {
  type CheckResult,
  DeliveryError,
  type SendResult,
  type Transport,
  type TransportContext,
} from "../../kernel/transport.js";
import {
  CheckSteps,
  callProvider,
  HttpTranscript,
  type ProviderErrorMapper,
  type ProviderResponse,
} from "../../transport/http.js";
import { buildMime, envelopeRecipients } from "../../transport/mime.js";
import { endpointUrl, providerBase } from "../../transport/operator.js";
import { mailgunCode } from "./errors.js";

/** Mailgun's own API hosts, by region: the only ones it talks to unless the operator allows another. */
export const MAILGUN_HOSTS: Record<string, string> = {
  us: "https://api.mailgun.net",
  eu: "https://api.eu.mailgun.net",
};

export interface MailgunOptions {
  timeoutMs?: number;
}

/** The API base: the base URL setting if set (and allowed), else the region's address. */
export function mailgunBase(settings: TransportContext["settings"], operator: OperatorPolicy = STRICT_OPERATOR): URL {
  const region = Object.hasOwn(MAILGUN_HOSTS, String(settings.region)) ? String(settings.region) : "us";
  const base = typeof settings.baseUrl === "string" && settings.baseUrl ? settings.baseUrl : MAILGUN_HOSTS[region];
  return providerBase("Mailgun", base, Object.values(MAILGUN_HOSTS), operator);
}

/** Mailgun's JSON error body: {"message": "..."}. Anything else is shown as its status only. */
function isMailgunError(json: unknown): boolean {
  return typeof (json as { message?: unknown } | undefined)?.message === "string";
}

function mailgunMessage(response: ProviderResponse): string {
  const json = response.json as { message?: unknown } | undefined;
  return typeof json?.message === "string" ? json.message : "";
}

const mapMailgunError: ProviderErrorMapper = (response, remote) => {
  const message = mailgunMessage(response);
  if (response.status === 404 && /domain/i.test(message)) {
    return new DeliveryError(mailgunCode.mailgun_domain_not_found, "server", `Mailgun: ${message}`, remote);
  }
  if (response.status === 400 && /not a valid address|invalid.*(recipient|address)/i.test(message)) {
    return new DeliveryError("recipient_rejected", "recipient", `Mailgun refused a recipient: ${message}`, remote);
  }
  return undefined;
};

/** Sends the MIME built by nodemailer's composer to Mailgun's messages.mime endpoint. */
export function createMailgunTransport(ctx: TransportContext, options: MailgunOptions = {}): Transport {
  const domain = String(ctx.settings.domain ?? "");
  const apiKey = ctx.secrets.apiKey ?? "";
  const tag = typeof ctx.settings.messageStreamTag === "string" ? ctx.settings.messageStreamTag : "";
  const operator = ctx.operator ?? STRICT_OPERATOR;
  const base = mailgunBase(ctx.settings, operator);
  const credentials = `api:${apiKey}`;
  // The Basic credentials are a form of the key too: their base64 must not reach a transcript.
  const secrets = apiKey ? [apiKey, credentials] : [];
  const headers = { Authorization: `Basic ${Buffer.from(credentials).toString("base64")}`, Accept: "application/json" };

  return {
    async send(message): Promise<SendResult> {
      const mime = await buildMime(message);
      const form = new FormData();
      for (const to of envelopeRecipients(message)) form.append("to", to);
      if (tag) form.append("o:tag", tag);
      form.append("message", new Blob([new Uint8Array(mime)], { type: "message/rfc822" }), "message.mime");
      const response = await callProvider({
        provider: "Mailgun",
        method: "POST",
        url: endpointUrl(base, ["v3", domain, "messages.mime"]),
        headers,
        body: form,
        timeoutMs: options.timeoutMs,
        secrets,
        mapError: mapMailgunError,
        isProviderError: isMailgunError,
        operator,
      });
      const json = response.json as { id?: unknown; message?: unknown } | undefined;
      const id = typeof json?.id === "string" ? json.id.replace(/^<|>$/g, "") : undefined;
      return {
        providerMessageId: id,
        response: `${response.status} ${typeof json?.message === "string" ? json.message : ""}`.trim(),
      };
    },

    async check(probe): Promise<CheckResult> {
      const checks = new CheckSteps(new HttpTranscript(secrets), probe.onStep);
      let domainInfo: ProviderResponse | undefined;
      let failure: unknown;
      // One request proves everything: an answer (connect), not 401 (key), not 404 (domain).
      try {
        domainInfo = await callProvider({
          provider: "Mailgun",
          method: "GET",
          url: endpointUrl(base, ["v3", "domains", domain]),
          headers,
          timeoutMs: options.timeoutMs ?? 15_000,
          secrets,
          mapError: mapMailgunError,
          isProviderError: isMailgunError,
          operator,
          transcript: checks.transcript,
        });
      } catch (err) {
        failure = err;
      }
      const answered = domainInfo !== undefined || (failure instanceof DeliveryError && failure.remote.code !== undefined);
      if (!answered) {
        checks.fail("connect", failure);
        return checks.result();
      }
      await checks.run("connect", async () => `Mailgun answered at ${base.href.replace(/\/$/, "")}`);
      const code = failure instanceof DeliveryError ? failure.code : undefined;
      if (failure && code !== "provider_unauthorized" && code !== mailgunCode.mailgun_domain_not_found) {
        checks.fail("request", failure);
        return checks.result();
      }
      await checks.run("authenticate", async () => {
        if (code === "provider_unauthorized") throw failure;
        return "Mailgun accepted the API key";
      });
      await checks.run("domain", async () => {
        if (failure) throw failure;
        const state = (domainInfo?.json as { domain?: { state?: unknown } } | undefined)?.domain?.state;
        if (state === "unverified" || state === "disabled") {
          return `Mailgun knows ${domain}, but its state is ${state}: Mailgun sends only once its DNS records are verified`;
        }
        return `Mailgun knows ${domain}${typeof state === "string" ? ` (state: ${state})` : ""}`;
      });
      return checks.result();
    },

    async close(): Promise<void> {},
  };
}
