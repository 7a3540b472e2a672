import type { Kysely } from "kysely";
import { errorEntry } from "../kernel/errors.js";
import { newId } from "../kernel/ids.js";
import { type CheckResult, DeliveryError, type OutgoingMessage, type TestStep } from "../kernel/transport.js";
import type { Database, EmailServersTable } from "../storage/schema.js";
import type { TransportCache } from "./transports.js";

/** The longest any one wait of a test may be, whatever the server's timeout setting says. */
export const TEST_MAX_TIMEOUT_MS = 60_000;

export interface TestRequest {
  mode: "check" | "send";
  /** Recipient: for `send` the test message's, for `check` the RCPT TO probe's. */
  to: string;
  /** Hears each step as it ends, for an answer that shows them one by one. */
  onStep?: (step: TestStep) => void;
  /** For a saved server: write the test email to the delivery log, settled and marked as a test. */
  log?: { db: Kysely<Database>; createdBy: string | null };
}

export interface TestReport extends CheckResult {
  ok: boolean;
  mode: "check" | "send";
  /** Set when a test message was sent. */
  messageId?: string;
  /** The test email's entry in the delivery log (when `log` was asked for). */
  logId?: string;
  /** What the server called the sent message (a Capture server: the captured message's id). */
  providerMessageId?: string;
}

function failure(error: unknown): NonNullable<CheckResult["error"]> {
  const e =
    error instanceof DeliveryError ? error : new DeliveryError("internal_error", "transient", String((error as Error)?.message));
  return { code: e.code, message: e.message, hint: errorEntry(e.code).summary, remote: e.remote };
}

/**
 * Tests a server (saved or draft). `check` proves connection and credentials without
 * delivering; `send` runs the same checks, then sends a real test message.
 */
export async function testServer(
  transports: TransportCache,
  row: EmailServersTable,
  secrets: Record<string, string>,
  request: TestRequest,
): Promise<TestReport> {
  const steps: TestStep[] = [];
  let transport: ReturnType<TransportCache["build"]>;
  try {
    transport = transports.build(row, secrets, { maxTimeoutMs: TEST_MAX_TIMEOUT_MS, oneOff: true });
  } catch (error) {
    const step = { step: "configuration", ok: false, ms: 0, detail: (error as Error).message };
    steps.push(step);
    request.onStep?.(step);
    return { ok: false, mode: request.mode, steps, transcript: [], error: failure(error) };
  }
  try {
    // A send test goes on to send: the check's closing "RSET … nothing was sent" would tell otherwise.
    const shown = (s: TestStep) => request.mode === "check" || !(s.step === "reset" && s.ok);
    const onStep = (s: TestStep) => {
      if (shown(s)) request.onStep?.(s);
    };
    const check = await transport.check({ from: row.from_address, to: request.to, onStep });
    const report: TestReport = {
      ok: !check.error && check.steps.every((s) => s.ok),
      mode: request.mode,
      ...check,
      steps: check.steps.filter(shown),
    };
    if (!report.ok || request.mode === "check") return report;
    const started = Date.now();
    const id = newId();
    const messageId = `${id}@${row.from_address.split("@")[1] ?? "mailroom.localhost"}`;
    const message: OutgoingMessage = {
      id,
      messageId,
      from: { address: row.from_address, name: row.from_name || "Mailroom" },
      to: [{ address: request.to }],
      cc: [],
      bcc: [],
      replyTo: [],
      subject: `Mailroom test message from "${row.name}"`,
      text: `This is a test message sent by Mailroom through the email server "${row.name}" (${row.driver}) at ${new Date().toISOString()}.\n\nIf you can read it, the server works.`,
      attachments: [],
      headers: {},
    };
    let kind: string | undefined;
    try {
      const result = await transport.send(message);
      const step = { step: "send", ok: true, ms: Date.now() - started, detail: result.response ?? "accepted" };
      report.steps.push(step);
      request.onStep?.(step);
      report.messageId = messageId;
      if (result.providerMessageId) report.providerMessageId = result.providerMessageId;
    } catch (error) {
      const f = failure(error);
      const step = { step: "send", ok: false, ms: Date.now() - started, detail: f.message };
      report.steps.push(step);
      request.onStep?.(step);
      report.error = f;
      report.ok = false;
      kind = error instanceof DeliveryError ? error.kind : "transient";
    }
    if (request.log) {
      await logTestMessage(request.log, row, message, {
        started,
        providerMessageId: report.providerMessageId ?? null,
        error: report.error,
        kind,
      });
      report.logId = id;
    }
    return report;
  } finally {
    await transport.close().catch(() => {});
  }
}

/**
 * The test email as a delivery-log entry with its one attempt. It is written settled (sent or
 * failed, one attempt of one), so the queue never claims it and nothing retries it.
 */
async function logTestMessage(
  log: NonNullable<TestRequest["log"]>,
  row: EmailServersTable,
  message: OutgoingMessage,
  outcome: {
    started: number;
    providerMessageId?: string | null;
    error?: NonNullable<CheckResult["error"]>;
    kind?: string;
  },
): Promise<void> {
  const now = Date.now();
  const failed = outcome.error !== undefined;
  await log.db.transaction().execute(async (trx) => {
    await trx
      .insertInto("messages")
      .values({
        id: message.id,
        server_id: row.id,
        server_name: row.name,
        status: failed ? "failed" : "sent",
        from_address: message.from.address,
        from_name: message.from.name ?? "",
        recipients: JSON.stringify({ to: message.to, cc: [], bcc: [], replyTo: [] }),
        recipient_search: message.to.map((a) => a.address.toLowerCase()).join(" "),
        subject: message.subject,
        payload: JSON.stringify({ text: message.text, headers: {}, attachments: [] }),
        message_id: message.messageId,
        idempotency_scope: null,
        idempotency_key: null,
        attempts: 1,
        max_attempts: 1,
        next_attempt_at: now,
        lease_owner: null,
        last_error_code: outcome.error?.code ?? null,
        last_error: outcome.error?.message ?? null,
        provider_message_id: outcome.providerMessageId ?? null,
        created_by: log.createdBy,
        created_at: outcome.started,
        updated_at: now,
        sent_at: failed ? null : now,
        is_test: 1,
      })
      .execute();
    await trx
      .insertInto("message_attempts")
      .values({
        message_id: message.id,
        server_id: row.id,
        server_name: row.name,
        started_at: outcome.started,
        duration_ms: now - outcome.started,
        outcome: failed ? (outcome.kind ?? "transient") : "sent",
        error_code: outcome.error?.code ?? null,
        remote_code: outcome.error?.remote?.code ?? null,
        remote_command: outcome.error?.remote?.command ?? null,
        remote_response: outcome.error?.remote?.response?.slice(0, 2000) ?? null,
        provider_message_id: outcome.providerMessageId ?? null,
      })
      .execute();
  });
}
