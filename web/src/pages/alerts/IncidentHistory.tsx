import { useState } from "react";
import { type AlertIncident, type AlertNotification, api, type List } from "../../api";
import { ErrorAlert, Loading, Pager, Time, useLoad } from "../../components/ui";
import { Link } from "../../router";

const LIMIT = 20;

const STATUS_TEXT: Record<AlertNotification["status"], string> = {
  pending: "Waiting to be sent",
  delivered: "Delivered",
  queued: "Email queued",
  failed: "Failed",
  not_sent: "Not sent",
};

function Notification({ n }: { n: AlertNotification }) {
  const retry = n.status === "pending" && n.attempts > 0;
  return (
    <li>
      <span className={`pill pill-${n.status}`}>{retry ? "Retrying" : STATUS_TEXT[n.status]}</span>{" "}
      {n.event === "opened" ? "Alert" : "Recovery"} to <strong>{n.channel.name}</strong>
      {n.responseStatus !== null && <span className="muted"> (HTTP {n.responseStatus})</span>}
      {n.attempts > 1 && <span className="muted"> after {n.attempts} tries</span>} · <Time value={n.at} />
      {n.message && (
        <>
          {" "}
          · through {n.message.server}:{" "}
          <Link to={`/messages/${encodeURIComponent(n.message.id)}`}>{n.message.status ?? "message"}</Link>
          {n.message.error && <span className="muted"> ({n.message.error})</span>}
        </>
      )}
      {n.error && (
        <p className={n.status === "not_sent" || n.status === "failed" ? "field-error" : "help"}>
          {n.error.message} <span className="muted">({n.error.code})</span>
          {retry && n.nextAttemptAt && (
            <>
              {" "}
              Next try <Time value={n.nextAttemptAt} />.
            </>
          )}
        </p>
      )}
    </li>
  );
}

/** Every incident, newest first, with what was sent about it to each channel. */
export function IncidentHistory() {
  const [offset, setOffset] = useState(0);
  const incidents = useLoad(
    () => api<List<AlertIncident>>("GET", `/api/alerts/incidents?limit=${LIMIT}&offset=${offset}`),
    [offset],
  );
  return (
    <section className="panel" aria-labelledby="incidents-heading">
      <div className="panel-head">
        <h2 id="incidents-heading">Incident history</h2>
        <button type="button" className="button small" onClick={() => void incidents.reload()}>
          Refresh
        </button>
      </div>
      <ErrorAlert error={incidents.error} />
      {!incidents.data && incidents.loading && <Loading what="Loading incidents" />}
      {incidents.data?.items.length === 0 && <p className="empty">No incident yet.</p>}
      {incidents.data && incidents.data.items.length > 0 && (
        <table className="table responsive">
          <caption className="visually-hidden">Incidents</caption>
          <thead>
            <tr>
              <th scope="col">Started</th>
              <th scope="col">What</th>
              <th scope="col">Notifications</th>
            </tr>
          </thead>
          <tbody>
            {incidents.data.items.map((i) => (
              <tr key={i.id}>
                <td data-label="Started">
                  <Time value={i.openedAt} />
                  <br />
                  {i.open ? (
                    <span className="pill pill-failing">Open</span>
                  ) : (
                    <span className="muted">
                      ended <Time value={i.resolvedAt} />
                    </span>
                  )}
                </td>
                <th scope="row" data-label="What">
                  {i.title}
                  <span className="status-detail">{i.detail}</span>
                  {i.resolution && <span className="status-detail">{i.resolution}</span>}
                  {i.subject && (
                    <Link to={`/servers/${encodeURIComponent(i.subject.id)}`} className="status-detail">
                      Open {i.subject.name}
                    </Link>
                  )}
                </th>
                <td data-label="Notifications">
                  {i.notifications.length === 0 ? (
                    <span className="muted">No channel was on.</span>
                  ) : (
                    <ul className="plain-list">
                      {i.notifications.map((n) => (
                        <Notification key={n.id} n={n} />
                      ))}
                    </ul>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {incidents.data && incidents.data.total > LIMIT && (
        <Pager offset={offset} limit={LIMIT} total={incidents.data.total} onChange={setOffset} />
      )}
    </section>
  );
}
