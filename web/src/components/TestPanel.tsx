/**
 * "Check connection" and "Send test email" for a server: the saved one, or the form as it is
 * now (a draft test, borrowing unchanged secrets from the saved server).
 */
import { type FormEvent, type ReactNode, useId, useState } from "react";
import { ApiError, streamTest, type TestReport, type TestStep } from "../api";
import type { Payload } from "../serverForm";
import { Alert } from "./ui";

const STEP_LABELS: Record<string, string> = {
  dns: "Look up the host",
  connect: "Connect",
  tls: "TLS",
  ehlo: "Greeting (EHLO)",
  auth: "Log in",
  authenticate: "Log in",
  token: "Get an access token",
  mail_from: "Sender accepted (MAIL FROM)",
  rcpt_to: "Recipient accepted (RCPT TO)",
  reset: "Reset (RSET)",
  send: "Send the test email",
  folder: "Capture folder",
  program: "Sendmail program",
  account: "Account",
  domain: "Sending domain",
  configuration: "Configuration",
};

function stepLabel(step: string): string {
  return STEP_LABELS[step] ?? step.charAt(0).toUpperCase() + step.slice(1).replaceAll("_", " ");
}

export function TestPanel({
  serverId,
  useDraft,
  draft,
  defaultTo,
  onFieldErrors,
  afterSend,
}: {
  serverId: string | null;
  /** Test the form as it is (unsaved changes, or a server not saved yet). */
  useDraft: boolean;
  /** The form as a request, or null when it has problems (then shown beside the fields). */
  draft: () => Payload | null;
  defaultTo: string;
  onFieldErrors: (fields: Record<string, string>) => void;
  /** Shown after a test email was sent (or failed), e.g. where to find it. */
  afterSend?: (report: TestReport) => ReactNode;
}) {
  const [to, setTo] = useState(defaultTo);
  const [running, setRunning] = useState<"check" | "send" | null>(null);
  const [report, setReport] = useState<TestReport | null>(null);
  // Steps as the server finishes them, while the test runs.
  const [live, setLive] = useState<TestStep[]>([]);
  const [error, setError] = useState<ApiError | Error | null>(null);
  const toId = useId();

  const run = async (mode: "check" | "send") => {
    // The buttons stay enabled (aria-disabled) while a test runs, so focus stays where it was.
    if (running) return;
    setReport(null);
    setError(null);
    setLive([]);
    let body: unknown;
    let path: string;
    if (useDraft || !serverId) {
      const server = draft();
      if (!server) return;
      const { name, driver, fromAddress, fromName, settings } = server;
      body = {
        mode,
        to: to.trim() || undefined,
        ...(serverId ? { basedOn: serverId } : {}),
        server: { name: name || undefined, driver, fromAddress, fromName, settings },
      };
      path = "/api/email-servers/test";
    } else {
      body = { mode, to: to.trim() || undefined };
      path = `/api/email-servers/${encodeURIComponent(serverId)}/test`;
    }
    setRunning(mode);
    try {
      setReport(await streamTest(path, body, (step) => setLive((steps) => [...steps, step])));
    } catch (e) {
      if (e instanceof ApiError) {
        const fields = { ...e.fields };
        // The draft's fields come back as "server.settings.port"; the form names them "settings.port".
        for (const [key, message] of Object.entries(e.fields)) {
          if (key.startsWith("server.")) fields[key.slice(7)] = message;
        }
        onFieldErrors(fields);
      }
      setError(e instanceof Error ? e : new Error(String(e)));
    } finally {
      setRunning(null);
    }
  };

  const submit = (event: FormEvent) => {
    event.preventDefault();
    void run("send");
  };

  return (
    <section className="panel" aria-labelledby="test-heading">
      <h2 id="test-heading" tabIndex={-1}>
        Test
      </h2>
      <p className="muted">
        {useDraft || !serverId
          ? "Tests the settings as they are in the form, unsaved changes included."
          : "Tests the saved settings."}{" "}
        “Check connection” connects and logs in without sending anything.
      </p>
      <form className="test-form" onSubmit={submit}>
        <button type="button" className="button" onClick={() => void run("check")} aria-disabled={running !== null}>
          {running === "check" ? "Checking…" : "Check connection"}
        </button>
        <div className="field inline">
          <label htmlFor={toId}>Send to</label>
          <input
            id={toId}
            type="email"
            autoComplete="email"
            value={to}
            onChange={(e) => setTo(e.target.value)}
            aria-invalid={error instanceof ApiError && error.fields.to ? true : undefined}
          />
        </div>
        <button type="submit" className="button" aria-disabled={running !== null}>
          {running === "send" ? "Sending…" : "Send test email"}
        </button>
      </form>
      <div aria-live="polite" className="test-result">
        {running && (
          <>
            <p className="loading" role="status">
              {running === "check" ? "Checking the connection…" : "Sending a test email…"}
            </p>
            <StepList steps={live} />
          </>
        )}
        {error && (
          <Alert kind="error">
            {error.message}
            {error instanceof ApiError && Object.keys(error.fields).length > 0 && " The fields above say what to fix."}
          </Alert>
        )}
        {report && <TestResult report={report} to={to} afterSend={afterSend} />}
      </div>
    </section>
  );
}

function TestResult({
  report,
  to,
  afterSend,
}: {
  report: TestReport;
  to: string;
  afterSend?: (report: TestReport) => ReactNode;
}) {
  const where = report.mode === "send" && afterSend ? afterSend(report) : null;
  return (
    <div className="test-report">
      {report.ok ? (
        <Alert kind="success">
          {report.mode === "send"
            ? `The test email was sent${to ? ` to ${to}` : ""}. Check that it arrived.`
            : report.steps.some((s) => s.warning)
              ? "The connection works, but read the warning below. No email was sent."
              : "The connection works: every step passed. No email was sent."}
          {where && <p className="test-links">{where}</p>}
        </Alert>
      ) : (
        <Alert kind="error">
          <strong>{report.error?.message ?? "The test failed."}</strong>
          {report.error?.hint && !report.error.message.includes(report.error.hint) && (
            <p className="hint-text">
              <span className="hint-label">What to do: </span>
              {report.error.hint}
            </p>
          )}
          {report.error?.remote?.response && (
            <p className="remote">
              The server said{report.error.remote.command ? ` after ${report.error.remote.command}` : ""}:{" "}
              <code>{report.error.remote.response}</code>
            </p>
          )}
          {where && <p className="test-links">{where}</p>}
        </Alert>
      )}
      <StepList steps={report.steps} />
      {report.transcript.length > 0 && (
        <details className="transcript">
          <summary>Transcript ({report.transcript.length} lines, passwords and tokens removed)</summary>
          {/* biome-ignore lint/a11y/noNoninteractiveTabindex: a long transcript scrolls, so keyboard users must be able to reach it */}
          <pre tabIndex={0}>{report.transcript.join("\n")}</pre>
        </details>
      )}
    </div>
  );
}

function StepList({ steps }: { steps: TestStep[] }) {
  return (
    <ol className="steps">
      {steps.map((s, i) => (
        // biome-ignore lint/suspicious/noArrayIndexKey: a test's steps never reorder
        <li key={`${s.step}-${i}`} className={!s.ok ? "step failed" : s.warning ? "step warning" : "step ok"}>
          <span className="step-icon" aria-hidden="true">
            {!s.ok ? "✗" : s.warning ? "!" : "✓"}
          </span>
          <span className="step-name">
            {stepLabel(s.step)}
            <span className="visually-hidden">{!s.ok ? ": failed" : s.warning ? ": passed, with a warning" : ": passed"}</span>
          </span>
          <span className="step-ms">{s.ms} ms</span>
          {s.detail && <span className="step-detail">{s.detail}</span>}
        </li>
      ))}
    </ol>
  );
}
