import { useEffect, useState } from "react";
import {
  type Attempt,
  api,
  type CapturedMessage,
  describeSource,
  type EmailServer,
  errorMessage,
  type Message,
  type MessageWithAttempts,
  wasSent,
} from "../api";
import { CapturePreview } from "../components/CapturePreview";
import { confirmDialog } from "../components/Confirm";
import { ProviderEventsPanel } from "../components/ProviderEvents";
import {
  Alert,
  ErrorAlert,
  formatAddress,
  Loading,
  type Notice,
  NoticeAlert,
  PageTitle,
  StatusPill,
  Time,
  useLoad,
} from "../components/ui";
import { Link } from "../router";
import { useSession } from "../session";

/** "2 of 6" while more may come; a sent message just says how many it took. */
export function attemptsText(m: Pick<Message, "status" | "attemptCount" | "maxAttempts">): string {
  if (wasSent(m.status)) return m.attemptCount === 1 ? "1 attempt" : `${m.attemptCount} attempts`;
  return `${m.attemptCount} of ${m.maxAttempts}`;
}

/** A server's answer as "550 5.1.1 …": its code once, even when the text repeats it. */
export function responseText(response: Attempt["response"]): string {
  const text = response.text ?? "";
  const code = response.code === null ? "" : String(response.code);
  return code && !text.startsWith(code) ? `${code} ${text}`.trim() : text;
}

/** Failures that will not change by trying again unchanged (the recipient or the message was refused). */
function refusedForGood(m: MessageWithAttempts): Attempt | null {
  const last = m.attempts.at(-1);
  if (m.status !== "failed" || !last) return null;
  return last.outcome === "recipient" || last.outcome.includes("permanent") || last.outcome === "message" ? last : null;
}

export function MessagePage({ id }: { id: string }) {
  const { can } = useSession();
  const [notice, setNotice] = useState<Notice>(null);
  const [busy, setBusy] = useState(false);
  const message = useLoad(() => api<MessageWithAttempts>("GET", `/api/messages/${encodeURIComponent(id)}`), [id]);
  const m = message.data;

  // While it waits or is being sent, look again every couple of seconds.
  const pending = m?.status === "queued" || m?.status === "sending";
  const { reload } = message;
  useEffect(() => {
    if (!pending) return;
    const timer = setInterval(() => void reload(), 2000);
    return () => clearInterval(timer);
  }, [pending, reload]);

  // A Capture server kept the message itself: show it. Other drivers keep nothing to show.
  const preview = useLoad(async () => {
    if (!m?.providerMessageId || m.status !== "sent" || m.bodyRemovedAt) return null;
    if (can("email-servers.view")) {
      const server = await api<EmailServer>("GET", `/api/email-servers/${encodeURIComponent(m.server.id)}`).catch(() => null);
      if (server?.driver !== "capture") return null;
    }
    return api<CapturedMessage>(
      "GET",
      `/api/capture/${encodeURIComponent(m.server.id)}/messages/${encodeURIComponent(m.providerMessageId)}`,
    ).catch(() => null);
  }, [m?.id, m?.providerMessageId, m?.status]);

  // "Queued again" is news only until the message moves on.
  const status = m?.status;
  useEffect(() => {
    if (status && status !== "queued" && status !== "sending") setNotice((n) => (n?.kind === "success" ? null : n));
  }, [status]);

  const retry = async () => {
    const refused = m && refusedForGood(m);
    if (refused) {
      const answer = responseText(refused.response);
      const ok = await confirmDialog({
        title: "Retry a message that was refused?",
        message: `The server refused it for good${answer ? ` (${answer})` : ""}. Sent again unchanged, it will most likely be refused again: fix the address or the cause first.`,
        confirmLabel: "Retry anyway",
        cancelLabel: "Don’t retry",
        danger: true,
      });
      if (!ok) return;
    }
    setBusy(true);
    setNotice(null);
    try {
      await api("POST", `/api/messages/${encodeURIComponent(id)}/retry`);
      setNotice({ kind: "success", text: "Queued again: a worker picks it up in a moment." });
      await message.reload();
    } catch (e) {
      setNotice({ kind: "error", text: errorMessage(e) });
    } finally {
      setBusy(false);
    }
  };

  if (message.error) {
    return (
      <section>
        <PageTitle>Message</PageTitle>
        <ErrorAlert error={message.error} />
        <Link to="/messages">Back to the messages</Link>
      </section>
    );
  }
  if (!m) return <Loading what="Loading the message" />;

  return (
    <section>
      <p className="breadcrumb">
        <Link to="/messages">Messages</Link> <span aria-hidden="true">›</span>
      </p>
      <div className="page-head">
        <PageTitle title={m.subject || "(no subject)"}>{m.subject || "(no subject)"}</PageTitle>
        <div className="status-line">
          <StatusPill status={m.status} />
          {m.test && <span className="badge">Test</span>}
          {(m.status === "failed" || m.status === "held") && can("messages.send") && !m.test && !m.bodyRemovedAt && (
            <button type="button" className="button primary" onClick={() => void retry()} disabled={busy}>
              {busy ? "Retrying…" : "Retry"}
            </button>
          )}
        </div>
      </div>
      <NoticeAlert notice={notice} onDismiss={() => setNotice(null)} />
      {m.test && (
        <Alert kind="info">
          A test email from the server’s Test panel: it is never retried.{" "}
          {can("email-servers.view") && <Link to={`/servers/${m.server.id}`}>Run the test again</Link>}
        </Alert>
      )}
      {m.bodyNote && (
        <Alert kind="info">
          {m.bodyNote} The recipients, subject and attempts are kept; the text, HTML and attachments are not.
        </Alert>
      )}
      {m.lastError && !wasSent(m.status) && (
        <Alert kind={m.status === "failed" ? "error" : "warning"}>
          <strong>{m.lastError.message}</strong> <span className="muted">({m.lastError.code})</span>
        </Alert>
      )}
      <section className="panel" aria-labelledby="details-heading">
        <h2 id="details-heading">Details</h2>
        <dl className="facts">
          <dt>From</dt>
          <dd>{formatAddress(m.from)}</dd>
          <dt>To</dt>
          <dd className="break">{m.to.map(formatAddress).join(", ") || "—"}</dd>
          {m.cc.length > 0 && (
            <>
              <dt>Cc</dt>
              <dd className="break">{m.cc.map(formatAddress).join(", ")}</dd>
            </>
          )}
          {m.bcc.length > 0 && (
            <>
              <dt>Bcc</dt>
              <dd className="break">{m.bcc.map(formatAddress).join(", ")}</dd>
            </>
          )}
          <dt>Source</dt>
          <dd className="break">{describeSource(m.source)}</dd>
          <dt>Server</dt>
          <dd>{can("email-servers.view") ? <Link to={`/servers/${m.server.id}`}>{m.server.name}</Link> : m.server.name}</dd>
          {m.route && (
            <>
              <dt>Route</dt>
              <dd>{can("email-servers.view") ? <Link to="/routes">{m.route}</Link> : m.route}</dd>
            </>
          )}
          {m.tag && (
            <>
              <dt>Tag</dt>
              <dd>{m.tag}</dd>
            </>
          )}
          <dt>Created</dt>
          <dd>
            <Time value={m.createdAt} />
          </dd>
          <dt>Sent</dt>
          <dd>
            <Time value={m.sentAt} />
          </dd>
          {m.nextAttemptAt && m.status !== "sent" && m.status !== "failed" && (
            <>
              <dt>Next attempt</dt>
              <dd>
                <Time value={m.nextAttemptAt} />
              </dd>
            </>
          )}
          <dt>Attempts</dt>
          <dd>{attemptsText(m)}</dd>
          {m.bodyRemovedAt && (
            <>
              <dt>Body</dt>
              <dd>
                Removed by retention on <Time value={m.bodyRemovedAt} />
              </dd>
            </>
          )}
          <dt>Message-ID</dt>
          <dd className="break">
            <code>{m.messageId}</code>
          </dd>
          {m.providerMessageId && (
            <>
              <dt>Provider’s id</dt>
              <dd className="break">
                <code>{m.providerMessageId}</code>
              </dd>
            </>
          )}
        </dl>
      </section>
      <section className="panel" aria-labelledby="attempts-heading">
        <h2 id="attempts-heading">Attempts</h2>
        {m.attempts.length === 0 ? (
          <p className="muted">No attempt yet.</p>
        ) : (
          <table className="table responsive attempts">
            <caption className="visually-hidden">Delivery attempts, oldest first</caption>
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Server</th>
                <th scope="col">Outcome</th>
                <th scope="col">Response</th>
                <th scope="col">Took</th>
              </tr>
            </thead>
            <tbody>
              {m.attempts.map((a, i) => (
                // biome-ignore lint/suspicious/noArrayIndexKey: attempts only ever grow at the end
                <tr key={`${a.at}-${i}`}>
                  <th scope="row" data-label="When">
                    <Time value={a.at} />
                  </th>
                  <td data-label="Server">{a.server.name}</td>
                  <td data-label="Outcome">
                    {/* A skipped server (routing) did not fail the message: it went on to the next one. */}
                    <span className={`pill pill-${a.outcome === "sent" ? "sent" : a.outcome === "skipped" ? "held" : "failed"}`}>
                      {a.outcome}
                    </span>
                    {a.errorCode && <span className="status-detail">{a.errorCode}</span>}
                  </td>
                  <td data-label="Response" className="response">
                    {a.response.code || a.response.text ? (
                      <code>
                        {a.response.command ? `${a.response.command} → ` : ""}
                        {responseText(a.response)}
                      </code>
                    ) : (
                      "—"
                    )}
                  </td>
                  <td data-label="Took">{a.durationMs} ms</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
      <ProviderEventsPanel message={m} />
      {preview.data && m.providerMessageId && (
        <CapturePreview
          message={preview.data}
          downloadBase={`/api/capture/${encodeURIComponent(m.server.id)}/messages/${encodeURIComponent(m.providerMessageId)}`}
        />
      )}
    </section>
  );
}
