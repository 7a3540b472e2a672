import { useState } from "react";
import { api, type Stats, type StatsRange } from "../api";
import { BarChart, type Bucket } from "../components/BarChart";
import { DeliverabilityPanel } from "../components/ProviderEvents";
import { RetentionPanel } from "../components/RetentionPanel";
import { ErrorAlert, Loading, PageTitle, StatusPill, timeAgo, useLoad } from "../components/ui";
import { Link } from "../router";
import { useSession } from "../session";

type RangeKey = "24h" | "30d";

const RANGES: { key: RangeKey; label: string; long: string }[] = [
  { key: "24h", label: "24 hours", long: "the last 24 hours" },
  { key: "30d", label: "30 days", long: "the last 30 days" },
];

function bucketsOf(range: StatsRange, values: { sent: number[]; failed: number[] }): Bucket[] {
  const start = new Date(range.start).getTime();
  const hourly = range.bucketMs < 86_400_000;
  return values.sent.map((sent, i) => {
    const from = new Date(start + i * range.bucketMs);
    const to = new Date(start + (i + 1) * range.bucketMs);
    const label = hourly
      ? from.toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" })
      : from.toLocaleDateString("en-GB", { day: "numeric", month: "short" });
    const title = hourly
      ? `${label}–${to.toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" })}`
      : from.toLocaleDateString("en-GB", { weekday: "short", day: "numeric", month: "short" });
    return { label, title, sent, failed: values.failed[i] ?? 0 };
  });
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

export function OverviewPage() {
  const { can } = useSession();
  const canViewServers = can("email-servers.view");
  const [rangeKey, setRangeKey] = useState<RangeKey>("24h");
  const stats = useLoad(() => api<Stats>("GET", "/api/stats"), []);
  const s = stats.data;
  const range = s?.ranges[rangeKey];
  const meta = RANGES.find((r) => r.key === rangeKey)!;
  // One scale for every server's chart, so that their bars compare.
  const scale = Math.max(0, ...(range?.series.flatMap((x) => x.sent.map((sent, i) => sent + (x.failed[i] ?? 0))) ?? []));

  return (
    <section>
      <div className="page-head">
        <PageTitle>Overview</PageTitle>
        <button type="button" className="button small" onClick={() => void stats.reload()} disabled={stats.loading}>
          {stats.loading && s ? "Refreshing…" : "Refresh"}
        </button>
      </div>
      <ErrorAlert error={stats.error} />
      {!s && stats.loading && <Loading what="Loading the overview" />}
      {s && range && (
        <>
          <div className="cards">
            <div className="card">
              <h2 className="card-title">Queue</h2>
              <p className="card-number">{s.queue.queued + s.queue.sending}</p>
              <p className="muted">
                {s.queue.queued} waiting, {s.queue.sending} sending
                {s.queue.oldestQueuedAt && <>; oldest queued {timeAgo(s.queue.oldestQueuedAt)}</>}
              </p>
            </div>
            <div className="card">
              <h2 className="card-title">Held</h2>
              <p className="card-number">{s.queue.held}</p>
              <p className="muted">
                {s.queue.held > 0 ? (
                  <Link to="/messages?status=held">Waiting for a server to be fixed</Link>
                ) : (
                  "None waiting for a fix"
                )}
              </p>
            </div>
            <div className="card">
              <h2 className="card-title">Sent, {meta.label}</h2>
              <p className="card-number">{range.totals.sent}</p>
              <p className="muted">
                {range.totals.failed > 0 ? <Link to="/messages?status=failed">{range.totals.failed} failed</Link> : "none failed"}
              </p>
            </div>
          </div>

          <section className="panel" aria-labelledby="attention-heading">
            <h2 id="attention-heading">Servers needing attention</h2>
            {s.attention.length === 0 && s.dailyLimitReached.length === 0 ? (
              <p className="muted">Every email server is ready.</p>
            ) : (
              <ul className="attention">
                {s.attention.map((a) => (
                  <li key={a.id}>
                    {canViewServers ? <Link to={`/servers/${a.id}`}>{a.name}</Link> : <strong>{a.name}</strong>}{" "}
                    <StatusPill status={a.status} />
                    {a.statusDetail && <span className="status-detail">{a.statusDetail}</span>}
                  </li>
                ))}
                {s.dailyLimitReached.map((d) => (
                  <li key={`limit-${d.id}`}>
                    {canViewServers ? <Link to={`/servers/${d.id}`}>{d.name}</Link> : <strong>{d.name}</strong>}{" "}
                    <span className="pill pill-held">Daily limit reached</span>
                    <span className="status-detail">
                      {d.sent} of {d.limit} sent in the last 24 hours; its routes' next servers take its mail, the rest waits.
                    </span>
                  </li>
                ))}
              </ul>
            )}
          </section>

          <section className="panel" aria-labelledby="chart-heading">
            <div className="panel-head">
              <h2 id="chart-heading">Messages per server</h2>
              <fieldset className="segmented">
                <legend className="visually-hidden">Period</legend>
                {RANGES.map((r) => (
                  <label key={r.key} className={rangeKey === r.key ? "is-selected" : undefined}>
                    <input
                      type="radio"
                      name="range"
                      value={r.key}
                      checked={rangeKey === r.key}
                      onChange={() => setRangeKey(r.key)}
                    />
                    {r.label}
                  </label>
                ))}
              </fieldset>
            </div>
            <p className="legend" aria-hidden="true">
              <span className="swatch swatch-sent" /> Sent <span className="swatch swatch-failed" /> Failed
            </p>
            {range.series.length === 0 ? (
              <>
                <p className="muted">No message was sent or failed in {meta.long}.</p>
                <BarChart
                  buckets={bucketsOf(range, { sent: Array(range.buckets).fill(0), failed: Array(range.buckets).fill(0) })}
                  label={`No messages in ${meta.long}`}
                  labelEvery={rangeKey === "24h" ? 3 : 5}
                />
              </>
            ) : (
              range.series.map((series) => {
                const buckets = bucketsOf(range, series);
                const sent = sum(series.sent);
                const failed = sum(series.failed);
                return (
                  <figure key={series.serverId} className="server-chart">
                    <figcaption>
                      <strong>{series.serverName}</strong>{" "}
                      <span className="muted">
                        {sent} sent, {failed} failed
                      </span>
                    </figcaption>
                    <BarChart
                      buckets={buckets}
                      scaleTo={scale}
                      label={`${series.serverName}: ${sent} sent and ${failed} failed in ${meta.long}, per ${rangeKey === "24h" ? "hour" : "day"}.`}
                      labelEvery={rangeKey === "24h" ? 3 : 5}
                    />
                    <details>
                      <summary>Numbers for {series.serverName}</summary>
                      <table className="table compact">
                        <caption className="visually-hidden">
                          {series.serverName}, {meta.long}
                        </caption>
                        <thead>
                          <tr>
                            <th scope="col">{rangeKey === "24h" ? "Hour" : "Day"}</th>
                            <th scope="col">Sent</th>
                            <th scope="col">Failed</th>
                          </tr>
                        </thead>
                        <tbody>
                          {buckets
                            .filter((b) => b.sent || b.failed)
                            .map((b) => (
                              <tr key={b.title}>
                                <th scope="row">{b.title}</th>
                                <td>{b.sent}</td>
                                <td>{b.failed}</td>
                              </tr>
                            ))}
                        </tbody>
                      </table>
                    </details>
                  </figure>
                );
              })
            )}
          </section>
          <DeliverabilityPanel deliverability={s.deliverability} />
          <RetentionPanel canEdit={can("settings.update")} />
        </>
      )}
    </section>
  );
}
