import type { TransportCache } from "../queue/transports.js";
import type { EmailServersTable } from "../storage/schema.js";
import { type CheckResult, DeliveryError, type TestStep } from "../transport/types.js";
import { errorCatalogue } from "./errors.js";
import { newId } from "./ids.js";

/** The longest any one wait of a test may be, whatever the server's timeout setting says. */
export const TEST_MAX_TIMEOUT_MS = 60_000;

export interface TestRequest {
  mode: "check" | "send";
  /** Recipient: for `send` the test message's, for `check` the RCPT TO probe's. */
  to: string;
  /** Hears each step as it ends, for an answer that shows them one by one. */
  onStep?: (step: TestStep) => void;
}

export interface TestReport extends CheckResult {
  ok: boolean;
  mode: "check" | "send";
  /** Set when a test message was sent. */
  messageId?: string;
}

function failure(error: unknown): NonNullable<CheckResult["error"]> {
  const e =
    error instanceof DeliveryError ? error : new DeliveryError("internal_error", "transient", String((error as Error)?.message));
  return { code: e.code, message: e.message, hint: errorCatalogue[e.code].summary, remote: e.remote };
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
    transport = transports.build(row, secrets, { maxTimeoutMs: TEST_MAX_TIMEOUT_MS });
  } catch (error) {
    const step = { step: "configuration", ok: false, ms: 0, detail: (error as Error).message };
    steps.push(step);
    request.onStep?.(step);
    return { ok: false, mode: request.mode, steps, transcript: [], error: failure(error) };
  }
  try {
    const check = await transport.check({ from: row.from_address, to: request.to, onStep: request.onStep });
    const report: TestReport = { ok: !check.error && check.steps.every((s) => s.ok), mode: request.mode, ...check };
    if (!report.ok || request.mode === "check") return report;
    const started = Date.now();
    const messageId = `${newId()}@${row.from_address.split("@")[1] ?? "mailroom.localhost"}`;
    try {
      const result = await transport.send({
        id: "test",
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
      });
      const step = { step: "send", ok: true, ms: Date.now() - started, detail: result.response ?? "accepted" };
      report.steps.push(step);
      request.onStep?.(step);
      report.messageId = messageId;
    } catch (error) {
      const f = failure(error);
      const step = { step: "send", ok: false, ms: Date.now() - started, detail: f.message };
      report.steps.push(step);
      request.onStep?.(step);
      report.error = f;
      report.ok = false;
    }
    return report;
  } finally {
    await transport.close().catch(() => {});
  }
}
