import { useState } from "react";
import { api, errorMessage, type List, type Webhook, type WebhookDelivery, type WebhookWithSecret } from "../api";
import { confirmDialog } from "../components/Confirm";
import { ErrorAlert, Loading, type Notice, NoticeAlert, Pager, PageTitle, Time, useLoad } from "../components/ui";
import { Link } from "../router";
import { SecretOnce, WebhookState } from "./Webhooks";

const PAGE = 25;
const STATUS_PILL: Record<WebhookDelivery["status"], string> = { pending: "queued", delivered: "sent", failed: "failed" };

/** One webhook: what it hears of, Send test, a new secret, and its deliveries log with every attempt and Replay. */
export function WebhookPage({ id }: { id: string }) {
  const path = `/api/webhooks/${encodeURIComponent(id)}`;
  const hook = useLoad(() => api<Webhook>("GET", path), [path]);
  const [status, setStatus] = useState("");
  const [offset, setOffset] = useState(0);
  const deliveries = useLoad(
    () =>
      api<List<WebhookDelivery>>("GET", `${path}/deliveries?limit=${PAGE}&offset=${offset}${status ? `&status=${status}` : ""}`),
    [path, status, offset],
  );
  const [notice, setNotice] = useState<Notice>(null);
  const [busy, setBusy] = useState(false);
  const [rotated, setRotated] = useState<WebhookWithSecret | null>(null);

  const act = async (what: () => Promise<string>) => {
    setBusy(true);
    try {
      setNotice({ kind: "success", text: await what() });
    } catch (e) {
      setNotice({ kind: "error", text: errorMessage(e) });
    } finally {
      setBusy(false);
      await deliveries.reload();
    }
  };

  const sendTest = () =>
    act(async () => {
      const d = await api<WebhookDelivery>("POST", `${path}/test`);
      const last = d.attemptLog.at(-1);
      return d.status === "delivered"
        ? `The test reached your endpoint (HTTP ${last?.httpStatus}).`
        : `The test did not get a 2xx: ${d.lastError ?? "no answer"}`;
    });

  const rotate = async () => {
    const ok = await confirmDialog({
      title: "Make a new signing secret?",
      message: "The new one signs from now on; the current one also signs for 24 hours, so your endpoint can switch.",
      confirmLabel: "Make a new secret",
    });
    if (!ok) return;
    await act(async () => {
      setRotated(await api<WebhookWithSecret>("POST", `${path}/rotate-secret`));
      return "A new signing secret is in force.";
    });
  };

  const replay = (d: WebhookDelivery) =>
    act(async () => {
      await api<WebhookDelivery>("POST", `/api/webhook-deliveries/${encodeURIComponent(d.id)}/replay`);
      return `Replaying ${d.type} (webhook-id ${d.id}): it goes out now, with retries as before.`;
    });

  if (!hook.data) return hook.error ? <ErrorAlert error={hook.error} /> : <Loading what="Loading the webhook" />;
  const w = hook.data;
  return (
    <section>
      <p>
        <Link to="/webhooks">← Webhooks</Link>
      </p>
      <div className="page-head">
        <PageTitle title={`Webhook ${w.url}`}>
          Webhook <span className="break">{w.url}</span>
        </PageTitle>
        <div className="row-actions">
          <button type="button" className="button" disabled={busy} onClick={() => void sendTest()}>
            Send test
          </button>
          <button type="button" className="button" disabled={busy} onClick={() => void rotate()}>
            New secret
          </button>
        </div>
      </div>
      <NoticeAlert notice={notice} onDismiss={() => setNotice(null)} />
      {rotated && <SecretOnce created={rotated} onDismiss={() => setRotated(null)} />}
      <section className="panel" aria-labelledby="webhook-facts">
        <h2 id="webhook-facts">Settings</h2>
        <dl className="facts">
          <dt>State</dt>
          <dd>
            <WebhookState webhook={w} />
          </dd>
          <dt>Events</dt>
          <dd>{w.events.join(", ")}</dd>
          {w.description && (
            <>
              <dt>Description</dt>
              <dd>{w.description}</dd>
            </>
          )}
          <dt>Hears of</dt>
          <dd>{w.owner.type === "token" ? `the messages sent with the API token ${w.owner.label}` : "every message"}</dd>
          <dt>Registered</dt>
          <dd>
            <Time value={w.createdAt} /> by {w.createdBy}
          </dd>
        </dl>
      </section>
      <section className="panel" aria-labelledby="deliveries-heading">
        <div className="page-head">
          <h2 id="deliveries-heading">Deliveries</h2>
          <label>
            Status{" "}
            <select
              value={status}
              onChange={(e) => {
                setOffset(0);
                setStatus(e.target.value);
              }}
            >
              <option value="">Any</option>
              <option value="pending">Pending</option>
              <option value="delivered">Delivered</option>
              <option value="failed">Failed</option>
            </select>
          </label>
        </div>
        <ErrorAlert error={deliveries.error} />
        {!deliveries.data && deliveries.loading && <Loading what="Loading deliveries" />}
        {deliveries.data && deliveries.data.items.length === 0 && <p className="empty">No deliveries yet.</p>}
        {deliveries.data?.items.map((d) => (
          <DeliveryItem key={d.id} delivery={d} busy={busy} onReplay={() => void replay(d)} />
        ))}
        {deliveries.data && <Pager total={deliveries.data.total} limit={PAGE} offset={offset} onChange={setOffset} />}
      </section>
    </section>
  );
}

function DeliveryItem({ delivery: d, busy, onReplay }: { delivery: WebhookDelivery; busy: boolean; onReplay: () => void }) {
  return (
    <details className="delivery">
      <summary>
        <span className={`pill pill-${STATUS_PILL[d.status]}`}>{d.status}</span> <strong>{d.type}</strong>{" "}
        <Time value={d.createdAt} /> · {d.attempts === 1 ? "1 attempt" : `${d.attempts} attempts`}
        {d.nextAttemptAt && (
          <>
            {" "}
            · next <Time value={d.nextAttemptAt} />
          </>
        )}
        {d.lastError && <span className="status-detail">{d.lastError}</span>}
      </summary>
      <p>
        webhook-id <code>{d.id}</code>
        {d.messageId && (
          <>
            {" "}
            · message <Link to={`/messages/${encodeURIComponent(d.messageId)}`}>{d.messageId}</Link>
          </>
        )}{" "}
        {d.status !== "pending" && (
          <button
            type="button"
            className="button small"
            disabled={busy}
            onClick={onReplay}
            aria-label={`Replay ${d.type} ${d.id}`}
          >
            Replay
          </button>
        )}
      </p>
      {d.attemptLog.length > 0 && (
        <table className="table responsive attempts">
          <caption className="visually-hidden">Attempts, oldest first</caption>
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">HTTP</th>
              <th scope="col">Error</th>
              <th scope="col">Response</th>
              <th scope="col">Took</th>
            </tr>
          </thead>
          <tbody>
            {d.attemptLog.map((a, i) => (
              // biome-ignore lint/suspicious/noArrayIndexKey: attempts only ever grow at the end
              <tr key={`${a.at}-${i}`}>
                <th scope="row" data-label="When">
                  <Time value={a.at} />
                </th>
                <td data-label="HTTP">{a.httpStatus ?? "—"}</td>
                <td data-label="Error">{a.error ?? "—"}</td>
                <td data-label="Response" className="response">
                  {a.response ? <code>{a.response}</code> : "—"}
                </td>
                <td data-label="Took">{a.durationMs} ms</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <div className="snippet">
        {/* biome-ignore lint/a11y/noNoninteractiveTabindex: a long body scrolls, so keyboard users must be able to reach it */}
        <pre tabIndex={0}>
          <code>{JSON.stringify(d.payload, null, 2)}</code>
        </pre>
      </div>
    </details>
  );
}
