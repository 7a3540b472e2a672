/**
 * Alerts: where alerts go (channels, each with a test whose result is shown), when they fire
 * (thresholds), and what happened (incidents, with each notification's result).
 */
import { useState } from "react";
import { type AlertChannel, type AlertTestResult, api, type EmailServer, errorMessage, type List } from "../api";
import {
  Alert,
  CopyButton,
  confirmThenDelete,
  ErrorAlert,
  Loading,
  type Notice,
  NoticeAlert,
  PageTitle,
  useLoad,
} from "../components/ui";
import { ChannelEditor, type SavedChannel } from "./alerts/ChannelEditor";
import { IncidentHistory } from "./alerts/IncidentHistory";
import { ThresholdsPanel } from "./alerts/ThresholdsPanel";

const TYPE_LABELS: Record<AlertChannel["type"], string> = {
  webhook: "Webhook (signed JSON)",
  slack: "Slack or Teams",
  email: "Email",
};

function where(c: AlertChannel): string {
  if (c.type === "email") return `${c.recipients.join(", ")} through ${c.server?.name ?? "the default server"}`;
  if (c.type === "webhook") return c.url ?? "";
  return `${c.host} (the URL is kept secret)`;
}

export function AlertsPage() {
  const channels = useLoad(() => api<List<AlertChannel>>("GET", "/api/alerts/channels"), []);
  const servers = useLoad(() => api<List<EmailServer>>("GET", "/api/email-servers?limit=500").catch(() => null), []);
  const [editing, setEditing] = useState<string | "new" | null>(null);
  const [secret, setSecret] = useState<{ channel: string; value: string } | null>(null);
  const [notice, setNotice] = useState<Notice>(null);
  const [tests, setTests] = useState<Record<string, AlertTestResult | "running" | { failed: string }>>({});
  const serverList = servers.data?.items ?? [];

  const saved = async (channel: SavedChannel, verb: string) => {
    setEditing(null);
    setNotice({ kind: "success", text: `${verb} ${channel.name}.` });
    if (channel.signingSecret) setSecret({ channel: channel.name, value: channel.signingSecret });
    await channels.reload();
  };

  const test = async (c: AlertChannel) => {
    setTests((t) => ({ ...t, [c.id]: "running" }));
    try {
      const result = await api<AlertTestResult>("POST", `/api/alerts/channels/${encodeURIComponent(c.id)}/test`);
      setTests((t) => ({ ...t, [c.id]: result }));
    } catch (e) {
      setTests((t) => ({ ...t, [c.id]: { failed: errorMessage(e) } }));
    }
  };

  const remove = (c: AlertChannel) =>
    confirmThenDelete(
      {
        title: `Delete the channel ${c.name}?`,
        message: "Alerts stop going there. Its past notifications stay in the history.",
        confirmLabel: `Delete ${c.name}`,
      },
      `/api/alerts/channels/${encodeURIComponent(c.id)}`,
      `Deleted ${c.name}.`,
      channels.reload,
      setNotice,
    );

  return (
    <section>
      <div className="page-head">
        <PageTitle>Alerts</PageTitle>
        {editing !== "new" && (
          <button type="button" className="button primary" onClick={() => setEditing("new")}>
            New channel
          </button>
        )}
      </div>
      <p className="lead">
        Mailroom tells you when a server fails and recovers, needs its account authorized again, or has an authorization or client
        secret about to end; when mail is held, waits too long or fails too often. Each alert fires once when the problem starts
        and once when it ends.
      </p>
      <NoticeAlert notice={notice} onDismiss={() => setNotice(null)} />
      {secret && <SigningSecret channel={secret.channel} value={secret.value} onDismiss={() => setSecret(null)} />}
      {editing === "new" && (
        <ChannelEditor servers={serverList} onCancel={() => setEditing(null)} onSaved={(c) => saved(c, "Added")} />
      )}

      <section className="panel" aria-labelledby="channels-heading">
        <h2 id="channels-heading">Channels</h2>
        <ErrorAlert error={channels.error} />
        {!channels.data && channels.loading && <Loading what="Loading channels" />}
        {channels.data?.items.length === 0 && (
          <p className="empty">No channel yet: alerts are only in the history below. Add a webhook, Slack or Teams, or email.</p>
        )}
        {channels.data && channels.data.items.length > 0 && (
          <table className="table responsive">
            <caption className="visually-hidden">Alert channels</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Type</th>
                <th scope="col">Goes to</th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {channels.data.items.map((c) =>
                editing === c.id ? (
                  <tr key={c.id}>
                    <td colSpan={4}>
                      <ChannelEditor
                        channel={c}
                        servers={serverList}
                        onCancel={() => setEditing(null)}
                        onSaved={(s) => saved(s, "Saved")}
                      />
                    </td>
                  </tr>
                ) : (
                  <tr key={c.id}>
                    <th scope="row" data-label="Name">
                      {c.name} {!c.enabled && <span className="badge badge-muted">off</span>}
                    </th>
                    <td data-label="Type">{TYPE_LABELS[c.type]}</td>
                    <td data-label="Goes to">
                      <span className="break">{where(c)}</span>
                      {c.warning && (
                        <Alert kind="warning">
                          <span data-testid="channel-warning">{c.warning}</span>
                        </Alert>
                      )}
                      <TestOutcome result={tests[c.id]} />
                    </td>
                    <td className="actions-cell">
                      <div className="row-actions">
                        <button
                          type="button"
                          className="button small"
                          disabled={tests[c.id] === "running"}
                          onClick={() => void test(c)}
                          aria-label={`Send test to ${c.name}`}
                        >
                          {tests[c.id] === "running" ? "Sending…" : "Send test"}
                        </button>
                        <button
                          type="button"
                          className="button small"
                          onClick={() => setEditing(c.id)}
                          aria-label={`Edit ${c.name}`}
                        >
                          Edit
                        </button>
                        <button
                          type="button"
                          className="button small danger-outline"
                          onClick={() => void remove(c)}
                          aria-label={`Delete ${c.name}`}
                        >
                          Delete
                        </button>
                      </div>
                    </td>
                  </tr>
                ),
              )}
            </tbody>
          </table>
        )}
      </section>

      <ThresholdsPanel />
      <IncidentHistory />
    </section>
  );
}

function SigningSecret({ channel, value, onDismiss }: { channel: string; value: string; onDismiss: () => void }) {
  return (
    <Alert kind="warning" onDismiss={onDismiss}>
      <p>
        <strong>Copy the signing secret of “{channel}” now: it is shown only once.</strong>
      </p>
      <p className="copy-line">
        <code className="secret-once" id="signing-secret">
          {value}
        </code>
        <CopyButton text={value} label="Copy the signing secret" />
      </p>
      <p>
        Each alert carries <code>webhook-id</code>, <code>webhook-timestamp</code> and <code>webhook-signature</code> (
        <code>v1,</code> base64 HMAC-SHA256 of <code>id.timestamp.body</code>): the Standard Webhooks libraries verify them with
        this secret.
      </p>
    </Alert>
  );
}

/** What a test did, in words, with the fix when it failed. */
function TestOutcome({ result }: { result: AlertTestResult | "running" | { failed: string } | undefined }) {
  if (!result || result === "running") return null;
  if ("failed" in result) return <Alert kind="error">{result.failed}</Alert>;
  const status = result.responseStatus === null ? "" : ` (HTTP ${result.responseStatus}, ${result.ms} ms)`;
  return (
    <div aria-live="polite" data-testid="test-outcome">
      {result.outcome === "delivered" && <Alert kind="success">Test alert delivered{status}.</Alert>}
      {result.outcome === "queued" && (
        <Alert kind="success">
          Test alert queued through {result.message?.server}:{" "}
          <a href={`/messages/${encodeURIComponent(result.message?.id ?? "")}`}>follow it in the delivery log</a>.
        </Alert>
      )}
      {result.error && (
        <Alert kind="error">
          <p>
            {result.outcome === "not_sent" ? "Not sent" : "Not delivered"}
            {status}: {result.error.message} <span className="muted">({result.error.code})</span>
          </p>
          {result.error.hint && <p className="help">{result.error.hint}</p>}
        </Alert>
      )}
    </div>
  );
}
