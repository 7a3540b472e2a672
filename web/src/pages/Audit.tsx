import { useState } from "react";
import { type AuditEntry, type AuditFilters, api, type List, query } from "../api";
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

/** Readable names of the actions; one not listed reads from its key ("group.update" → "Group update"). */
const ACTION_LABELS: Record<string, string> = {
  "auth.login_failed": "Failed sign-in",
  "email_server.create": "Server created",
  "email_server.update": "Server changed",
  "email_server.delete": "Server deleted",
  "email_server.copy": "Server copied",
  "email_server.default": "Default server changed",
  "email_server.oauth.start": "Authorization started",
  "email_server.oauth.authorize": "Account authorized",
  "email_server.oauth.refused": "Authorization refused",
  "email_server.oauth.disconnect": "Account disconnected",
  "capture.delete": "Captured message deleted",
  "capture.delete_all": "Captured mail cleared",
  "message.retry": "Message retried",
  "user.create": "User created",
  "user.update": "User changed",
  "user.delete": "User deleted",
  "group.create": "Group created",
  "group.update": "Group changed",
  "group.delete": "Group deleted",
  "token.create": "API token created",
  "token.revoke": "API token revoked",
  "keys.rotate": "Secret key rotated",
};

export function actionLabel(action: string): string {
  const known = ACTION_LABELS[action];
  if (known) return known;
  const words = action.replace(/[._]+/g, " ").trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

const TARGET_NOUNS: Record<string, string> = {
  email_server: "server",
  user: "user",
  group: "group",
  token: "API token",
  message: "message",
};

/** What an entry is about, by name, linked to its page when there is one. */
function Target({ entry }: { entry: AuditEntry }) {
  const { type, id, label } = entry.target;
  if (!id && !label) return null;
  const noun = TARGET_NOUNS[type] ?? type.replaceAll("_", " ");
  const name = label ?? id ?? "";
  const to =
    id && type === "email_server" && !entry.action.endsWith(".delete")
      ? `/servers/${id}`
      : id && type === "message"
        ? `/messages/${id}`
        : null;
  return (
    <span className="audit-target">
      <span className="muted">{noun} </span>
      {to ? <Link to={to}>{name}</Link> : <strong>{name}</strong>}
    </span>
  );
}

/** datetime-local wants "YYYY-MM-DDTHH:MM" in local time; the API wants ISO. */
function toIso(local: string): string {
  if (!local) return "";
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? "" : d.toISOString();
}

export function AuditPage() {
  const [action, setAction] = useState("");
  const [actorId, setActorId] = useState("");
  const [since, setSince] = useState("");
  const [until, setUntil] = useState("");
  const [offset, setOffset] = useState(0);
  const options = useLoad(() => api<AuditFilters>("GET", "/api/audit/filters"), []);
  const entries = useLoad(
    () =>
      api<List<AuditEntry>>(
        "GET",
        `/api/audit${query({ action, actorId, since: toIso(since), until: toIso(until), limit: LIMIT, offset })}`,
      ),
    [action, actorId, since, until, offset],
  );
  const change = (set: (v: string) => void) => (value: string) => {
    set(value);
    setOffset(0);
  };
  const filtered = Boolean(action || actorId || since || until);

  return (
    <section>
      <PageTitle>Audit log</PageTitle>
      <p className="muted lead">Who changed what, and when. Secrets show only as changed or unchanged.</p>
      <form className="filters" onSubmit={(e) => e.preventDefault()} aria-label="Filter the audit log">
        <div className="field small">
          <label htmlFor="audit-action">Action</label>
          <select id="audit-action" value={action} onChange={(e) => change(setAction)(e.target.value)}>
            <option value="">Any action</option>
            {(options.data?.actions ?? []).map((a) => (
              <option key={a} value={a}>
                {actionLabel(a)}
              </option>
            ))}
          </select>
        </div>
        <div className="field small">
          <label htmlFor="audit-actor">Who</label>
          <select id="audit-actor" value={actorId} onChange={(e) => change(setActorId)(e.target.value)}>
            <option value="">Anyone</option>
            {(options.data?.actors ?? []).map((a) => (
              <option key={`${a.type}:${a.id}`} value={a.id}>
                {a.type === "token" ? `${a.label} (API token)` : a.label}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor="audit-since">From</label>
          <input id="audit-since" type="datetime-local" value={since} onChange={(e) => change(setSince)(e.target.value)} />
        </div>
        <div className="field">
          <label htmlFor="audit-until">Until</label>
          <input id="audit-until" type="datetime-local" value={until} onChange={(e) => change(setUntil)(e.target.value)} />
        </div>
        {filtered && (
          <div className="field filters-reset">
            <button
              type="button"
              className="button"
              onClick={() => {
                setAction("");
                setActorId("");
                setSince("");
                setUntil("");
                setOffset(0);
              }}
            >
              Clear filters
            </button>
          </div>
        )}
      </form>
      <ErrorAlert error={options.error ?? entries.error} />
      {!entries.data && entries.loading && <Loading what="Loading the audit log" />}
      {entries.data && (
        <p className="muted" aria-live="polite">
          {entries.data.total} {entries.data.total === 1 ? "entry" : "entries"}
        </p>
      )}
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
                      <span className="audit-action" title={e.action}>
                        {actionLabel(e.action)}
                      </span>{" "}
                      <Target entry={e} />
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
