import http from "node:http";
import https from "node:https";
import {
  GetAccountCommand,
  type GetAccountCommandOutput,
  SESv2Client,
  SESv2ServiceException,
  SendEmailCommand,
} from "@aws-sdk/client-sesv2";
import type { ErrorCode } from "../../kernel/errors.js";
import { STRICT_OPERATOR } from "../../kernel/operator-policy.js";
import {
  type CheckResult,
  DeliveryError,
  type FailureKind,
  type SendResult,
  type Transport,
  type TransportContext,
} from "../../kernel/transport.js";
import { NETWORK_CLASS, networkFailure, systemCodes } from "../../transport/failure.js";
import { CheckSteps, HttpTranscript, redact, retryAfterMs } from "../../transport/http.js";
import { buildMime } from "../../transport/mime.js";
import { guardedLookup, providerBase, urlPort } from "../../transport/operator.js";
import { sesCode } from "./errors.js";

/** An AWS region name: the SDK builds the host from it, so nothing else may pass. */
export function isSesRegion(region: string): boolean {
  return /^[a-z]{2}(-[a-z]+)+-\d{1,2}$/.test(region);
}

/** SES's own endpoints for a region: the only ones it talks to unless the operator allows another. */
export function sesHosts(region: string): string[] {
  return isSesRegion(region) ? [`https://email.${region}.amazonaws.com`, `https://email-fips.${region}.amazonaws.com`] : [];
}

export interface SesOptions {
  timeoutMs?: number;
}

const CREDENTIAL_ERRORS = new Set([
  "UnrecognizedClientException",
  "InvalidClientTokenId",
  "SignatureDoesNotMatch",
  "InvalidSignatureException",
  "IncompleteSignature",
  "MissingAuthenticationToken",
  "MissingAuthenticationTokenException",
  "AccessDeniedException",
  "ExpiredTokenException",
  "CredentialsProviderError",
]);
const THROTTLING_ERRORS = new Set(["TooManyRequestsException", "LimitExceededException", "ThrottlingException", "Throttling"]);
/** The account or its configuration, not this message: hold the server's mail. */
const ACCOUNT_ERRORS = new Set(["AccountSuspendedException", "SendingPausedException", "NotFoundException"]);

/** Maps what the SES SDK throws (a service exception or a network failure) to a delivery error. */
export function sesError(err: unknown, secrets: string[]): DeliveryError {
  if (err instanceof DeliveryError) return err;
  const e = err instanceof Error ? err : new Error(String(err));
  const message = redact(e.message, secrets);
  // The SDK puts $metadata on every error; only an answer from SES carries an HTTP status.
  const answered = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode !== undefined;
  if (err instanceof SESv2ServiceException || answered) {
    const service = err as SESv2ServiceException;
    const status = service.$metadata?.httpStatusCode;
    const remote = { ...(status ? { code: status } : {}), response: `${e.name}: ${message}`.slice(0, 2000) };
    const fail = (code: ErrorCode, kind: FailureKind, text: string, wait?: number) =>
      new DeliveryError(code, kind, text, remote, wait);
    if (e.name === "MessageRejected" || e.name === "MailFromDomainNotVerifiedException") {
      if (/not verified/i.test(message) || e.name === "MailFromDomainNotVerifiedException") {
        return fail(sesCode.ses_email_not_verified, "server", `SES: ${message}`);
      }
      return fail(sesCode.ses_message_rejected, "message", `SES rejected the message: ${message}`);
    }
    if (CREDENTIAL_ERRORS.has(e.name) || status === 401 || status === 403) {
      return fail("provider_unauthorized", "server", `SES rejected the credentials (${e.name}): ${message}`);
    }
    if (THROTTLING_ERRORS.has(e.name) || service.$retryable?.throttling || status === 429) {
      const wait = retryAfterMs(headerOf(service, "retry-after"));
      return fail("provider_rate_limited", "rate_limited", `SES is throttling (${e.name}): ${message}`, wait);
    }
    if (ACCOUNT_ERRORS.has(e.name)) return fail(sesCode.ses_message_rejected, "server", `SES: ${message} (${e.name})`);
    if ((status ?? 0) >= 500 || service.$fault === "server") {
      return fail("provider_unavailable", "transient", `SES answered with a server error (${e.name}): ${message}`);
    }
    return fail(sesCode.ses_message_rejected, "message", `SES rejected the request (${e.name}): ${message}`);
  }
  if (CREDENTIAL_ERRORS.has(e.name)) return new DeliveryError("provider_unauthorized", "server", `SES credentials: ${message}`);
  const codes = systemCodes(err);
  if (e.name === "TimeoutError") codes.push("ETIMEDOUT");
  const network = networkFailure(codes);
  if (network?.code === "dns_not_found") {
    return new DeliveryError(network.code, network.kind, `The SES endpoint does not resolve: ${message}`);
  }
  if (network) return new DeliveryError(network.code, network.kind, `SES ${network.what}: ${message}`);
  return new DeliveryError(
    "connection_dropped",
    NETWORK_CLASS.connection_dropped,
    `The request to SES failed (${codes[0] || e.name}): ${message}`,
  );
}

function headerOf(err: SESv2ServiceException, name: string): string | undefined {
  const headers = err.$response?.headers ?? {};
  const key = Object.keys(headers).find((k) => k.toLowerCase() === name);
  return key ? headers[key] : undefined;
}

/** Appends a method/URL line and a status line per HTTP request the SDK makes; never headers. */
function recordTo(client: SESv2Client, transcript: HttpTranscript): void {
  client.middlewareStack.add(
    (next) => async (args) => {
      const req = args.request as { method?: string; protocol?: string; hostname?: string; port?: number; path?: string };
      const url = `${req.protocol ?? "https:"}//${req.hostname ?? ""}${req.port ? `:${req.port}` : ""}${req.path ?? ""}`;
      transcript.request(req.method ?? "?", url);
      const started = performance.now();
      try {
        const out = await next(args);
        const status = (out.response as { statusCode?: number }).statusCode ?? 0;
        transcript.response(status, "", Math.round(performance.now() - started));
        return out;
      } catch (err) {
        const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
        const ms = Math.round(performance.now() - started);
        if (status) transcript.response(status, (err as Error).name, ms);
        else transcript.failure((err as Error).message, ms);
        throw err;
      }
    },
    { step: "finalizeRequest", name: "mailroomTranscript", priority: "low" },
  );
}

/** Sends raw MIME through SES v2; retries are the queue's job, so the SDK tries once. */
export function createSesTransport(ctx: TransportContext, options: SesOptions = {}): Transport {
  const secretAccessKey = ctx.secrets.secretAccessKey ?? "";
  const secrets = [secretAccessKey];
  const operator = ctx.operator ?? STRICT_OPERATOR;
  const region = String(ctx.settings.region || "us-east-1");
  if (!isSesRegion(region)) {
    throw new DeliveryError("invalid_setting", "server", `The SES region '${region}' is not an AWS region, e.g. eu-west-1.`);
  }
  const endpointUrl =
    typeof ctx.settings.endpoint === "string" && ctx.settings.endpoint
      ? providerBase("SES", ctx.settings.endpoint, sesHosts(region), operator)
      : undefined;
  const endpoint = endpointUrl?.href.replace(/\/$/, "");
  const port = endpointUrl ? urlPort(endpointUrl) : 443;
  const configurationSet =
    typeof ctx.settings.configurationSet === "string" && ctx.settings.configurationSet
      ? ctx.settings.configurationSet
      : undefined;
  const makeClient = (timeoutMs: number) =>
    new SESv2Client({
      region,
      endpoint,
      credentials: { accessKeyId: String(ctx.settings.accessKeyId ?? ""), secretAccessKey },
      maxAttempts: 1,
      requestHandler: {
        connectionTimeout: Math.min(timeoutMs, 10_000),
        requestTimeout: timeoutMs,
        // Link-local and metadata addresses are refused at connect time.
        httpAgent: new http.Agent({ keepAlive: true, lookup: guardedLookup(operator, { protocol: "http:", port }) }),
        httpsAgent: new https.Agent({ keepAlive: true, lookup: guardedLookup(operator, { protocol: "https:", port }) }),
      },
    });
  let client: SESv2Client | undefined;

  return {
    async send(message): Promise<SendResult> {
      client ??= makeClient(options.timeoutMs ?? 30_000);
      const mime = await buildMime(message);
      const list = (addresses: { address: string }[]) => (addresses.length ? addresses.map((a) => a.address) : undefined);
      try {
        const out = await client.send(
          new SendEmailCommand({
            // Given explicitly so Bcc (absent from the MIME headers) is delivered too.
            Destination: { ToAddresses: list(message.to), CcAddresses: list(message.cc), BccAddresses: list(message.bcc) },
            Content: { Raw: { Data: mime } },
            ConfigurationSetName: configurationSet,
          }),
        );
        return {
          providerMessageId: out.MessageId,
          response: `${out.$metadata.httpStatusCode ?? 200} MessageId ${out.MessageId}`,
        };
      } catch (err) {
        throw sesError(err, secrets);
      }
    },

    async check(checkProbe): Promise<CheckResult> {
      const checks = new CheckSteps(new HttpTranscript(secrets), checkProbe.onStep);
      const probe = makeClient(options.timeoutMs ?? 15_000);
      recordTo(probe, checks.transcript);
      try {
        let account: Partial<GetAccountCommandOutput> = {};
        let failure: DeliveryError | undefined;
        try {
          account = await probe.send(new GetAccountCommand({}));
        } catch (err) {
          failure = sesError(err, secrets);
        }
        if (failure && failure.remote.code === undefined) {
          checks.fail("connect", failure);
          return checks.result();
        }
        await checks.run("connect", async () => `SES answered at ${endpoint ?? `the ${region} endpoint`}`);
        await checks.run("authenticate", async () => {
          if (failure) throw failure;
          return `SES accepted the access key for region ${region}`;
        });
        await checks.run("account", async () => {
          if (account.SendingEnabled === false) {
            throw new DeliveryError(
              sesCode.ses_message_rejected,
              "server",
              "SES has paused sending for this account in this region",
            );
          }
          const quota = account.SendQuota;
          const figures = quota
            ? `; sent ${quota.SentLast24Hours ?? 0} of ${quota.Max24HourSend ?? "?"} in 24 h, at most ${quota.MaxSendRate ?? "?"}/s`
            : "";
          const sandbox =
            account.ProductionAccessEnabled === false ? "sandbox: SES sends only to verified recipients" : "production access";
          return `Sending enabled (${sandbox})${figures}`;
        });
        return checks.result();
      } finally {
        probe.destroy();
      }
    },

    async close(): Promise<void> {
      client?.destroy();
      client = undefined;
    },
  };
}
