import { useEffect, useState } from "react";
import { type AuditEntry, api, type List, query } from "../api";
import { ErrorAlert, Loading, Pager, PageTitle, Time, useLoad } from "../components/ui";
import { Link } from "../router";

const LIMIT = 50;

/** Nested objects as "settings.port"-style keys, so a change shows only what changed inside. */
function flatten(value: unknown, prefix = "", out: Record<string, unknown> = {}): Record<string, unknown> {
  if (value && typeof value === "object" && !Array.isArray(value)) {
    for (const [key, inner] of Object.entries(value)) flatten(inner, prefix ? `${prefix}.${key}` : key, out);
  } else if (prefix) {
    out[prefix] = value;
  }
  return out;
}

/** The fields that differ between before and after, as "key: old → new". */
function changes(before: unknown, after: unknown): string[] {
  const b = flatten(before);
  const a = flatten(after);
  const show = (v: unknown) => (v === undefined || v === null ? "—" : typeof v === "string" ? v : JSON.stringify(v));
  const lines: string[] = [];
  for (const key of new Set([...Object.keys(b), ...Object.keys(a)])) {
    const x = show(b[key]);
    const y = show(a[key]);
    if (x === y) continue;
    lines.push(before == null ? `${key}: ${y}` : after == null ? `${key}: ${x} (removed)` : `${key}: ${x} → ${y}`);
  }
  return lines;
}

export function AuditPage() {
  const [action, setAction] = useState("");
  const [filter, setFilter] = useState("");
  const [offset, setOffset] = useState(0);
  useEffect(() => {
    const timer = setTimeout(() => {
      setFilter(action.trim());
      setOffset(0);
    }, 250);
    return () => clearTimeout(timer);
  }, [action]);
  const entries = useLoad(
    () => api<List<AuditEntry>>("GET", `/api/audit${query({ action: filter, limit: LIMIT, offset })}`),
    [filter, offset],
  );

  return (
    <section>
      <PageTitle>Audit log</PageTitle>
      <p className="muted lead">Who changed what, and when. Secrets show only as changed or unchanged.</p>
      <div className="toolbar">
        <div className="field inline">
          <label htmlFor="audit-action">Action</label>
          <input
            id="audit-action"
            type="search"
            placeholder="e.g. email_server.update"
            value={action}
            onChange={(e) => setAction(e.target.value)}
          />
        </div>
      </div>
      <ErrorAlert error={entries.error} />
      {!entries.data && entries.loading && <Loading what="Loading the audit log" />}
      {entries.data && entries.data.items.length === 0 && <p className="empty">No entries.</p>}
      {entries.data && entries.data.items.length > 0 && (
        <>
          <table className="table responsive audit">
            <caption className="visually-hidden">Audit log, newest first</caption>
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Who</th>
                <th scope="col">Action</th>
                <th scope="col">What changed</th>
              </tr>
            </thead>
            <tbody>
              {entries.data.items.map((e) => {
                const lines = changes(e.before, e.after);
                return (
                  <tr key={e.id}>
                    <th scope="row" data-label="When" className="nowrap">
                      <Time value={e.at} />
                    </th>
                    <td data-label="Who" className="who">
                      {e.actor.label}
                      {e.ip && <span className="muted"> ({e.ip})</span>}
                    </td>
                    <td data-label="Action">
                      <code>{e.action}</code>
                      {e.target.type === "email_server" && e.target.id && (
                        <>
                          {" "}
                          <Link to={`/servers/${e.target.id}`} aria-label={`Open the server of entry ${e.id}`}>
                            server
                          </Link>
                        </>
                      )}
                    </td>
                    <td data-label="What changed" className="break">
                      {lines.length === 0 ? (
                        <span className="muted">—</span>
                      ) : lines.length <= 3 ? (
                        <ul className="plain">
                          {lines.map((l) => (
                            <li key={l}>{l}</li>
                          ))}
                        </ul>
                      ) : (
                        <details>
                          <summary>{lines.length} fields</summary>
                          <ul className="plain">
                            {lines.map((l) => (
                              <li key={l}>{l}</li>
                            ))}
                          </ul>
                        </details>
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
          <Pager total={entries.data.total} limit={LIMIT} offset={offset} onChange={setOffset} />
        </>
      )}
    </section>
  );
}
