import { type FormEvent, useEffect, useState } from "react";
import { api, errorMessage, type Retention, type RetentionPeriods } from "../api";
import { formatBytes, type Notice, NoticeAlert, Time, useLoad } from "./ui";

const FIELDS: { key: keyof RetentionPeriods; label: string; kept: string }[] = [
  { key: "bodyDays", label: "Message bodies", kept: "until the message goes" },
  { key: "metadataDays", label: "Messages (recipients, subject, status, attempts)", kept: "for ever" },
  { key: "auditDays", label: "Audit entries", kept: "for ever" },
];

function days(value: number | null, kept: string): string {
  return value === null ? kept : `${value} ${value === 1 ? "day" : "days"}`;
}

/** Form text to a period: blank keeps for ever; undefined when it is not whole days. */
function toPeriod(text: string): number | null | undefined {
  if (text.trim() === "") return null;
  return /^\s*\d+\s*$/.test(text) ? Number(text) : undefined;
}

/** Storage and retention on the overview: database size, messages by tier, the last purge, the periods. */
export function RetentionPanel({ canEdit }: { canEdit: boolean }) {
  const retention = useLoad(() => api<Retention>("GET", "/api/settings/retention"), []);
  const [form, setForm] = useState<Record<keyof RetentionPeriods, string> | null>(null);
  const [notice, setNotice] = useState<Notice>(null);
  const [busy, setBusy] = useState(false);
  const r = retention.data;

  useEffect(() => {
    if (!r) return;
    const e = r.effective;
    setForm({
      bodyDays: e.bodyDays === null ? "" : String(e.bodyDays),
      metadataDays: e.metadataDays === null ? "" : String(e.metadataDays),
      auditDays: e.auditDays === null ? "" : String(e.auditDays),
    });
  }, [r]);

  // Without messages.view (a 403) the panel is simply not shown.
  if (!r) return null;
  const { status } = r;
  const last = status.lastPurge;

  const change = async (method: "PUT" | "DELETE", body?: RetentionPeriods) => {
    setBusy(true);
    setNotice(null);
    try {
      await api(method, "/api/settings/retention", body);
      setNotice({
        kind: "success",
        text: method === "PUT" ? "Saved: the next purge uses these periods." : "The environment’s periods apply again.",
      });
      await retention.reload();
    } catch (e) {
      setNotice({ kind: "error", text: errorMessage(e) });
    } finally {
      setBusy(false);
    }
  };
  const save = (event: FormEvent) => {
    event.preventDefault();
    if (!form) return;
    const periods = Object.fromEntries(FIELDS.map((f) => [f.key, toPeriod(form[f.key])]));
    const wrong = FIELDS.find((f) => periods[f.key] === undefined);
    if (wrong) {
      setNotice({ kind: "error", text: `${wrong.label}: enter whole days, or leave it empty to keep for ever.` });
      return;
    }
    void change("PUT", periods as RetentionPeriods);
  };

  return (
    <section className="panel" aria-labelledby="retention-heading">
      <h2 id="retention-heading">Storage and retention</h2>
      <div className="cards">
        <div className="card">
          <h3 className="card-title">Database</h3>
          <p className="card-number">{formatBytes(status.databaseBytes)}</p>
          {status.autoVacuum === "off" && <p className="muted">SQLite file does not shrink: see docs/operations.md#retention</p>}
        </div>
        <div className="card">
          <h3 className="card-title">Messages</h3>
          <p className="card-number">{status.messages.full + status.messages.metadataOnly}</p>
          <p className="muted">
            {status.messages.full} with their body, {status.messages.metadataOnly} metadata only
          </p>
        </div>
        <div className="card">
          <h3 className="card-title">Last purge</h3>
          {last ? (
            <>
              <p className="card-number">
                <Time value={last.finishedAt ?? last.startedAt} />
              </p>
              <p className="muted">
                {last.bodies} bodies, {last.messages} messages, {last.audit} audit entries removed
                {last.error && <> — stopped: {last.error}</>}
              </p>
            </>
          ) : (
            <p className="muted">None yet: purges run in the background every few minutes.</p>
          )}
        </div>
      </div>
      <NoticeAlert notice={notice} onDismiss={() => setNotice(null)} />
      {canEdit && form ? (
        <form onSubmit={save} aria-describedby="retention-help">
          <p className="help" id="retention-help">
            Counted from when a message was sent or failed. Queued, sending and held messages are never removed. Leave a box empty
            to keep for ever.{" "}
            {r.source === "settings"
              ? "These settings override the environment."
              : "From the environment (MAILROOM_RETENTION_*_DAYS)."}
          </p>
          {FIELDS.map((f) => (
            <div className="field" key={f.key}>
              <label htmlFor={`retention-${f.key}`}>{f.label}, days</label>
              <input
                id={`retention-${f.key}`}
                inputMode="numeric"
                value={form[f.key]}
                placeholder={f.kept}
                onChange={(e) => setForm({ ...form, [f.key]: e.target.value })}
              />
            </div>
          ))}
          <div className="actions">
            <button type="submit" className="button primary" disabled={busy}>
              {busy ? "Saving…" : "Save retention"}
            </button>
            {r.source === "settings" && (
              <button type="button" className="button" disabled={busy} onClick={() => void change("DELETE")}>
                Use the environment’s ({FIELDS.map((f) => days(r.environment[f.key], f.kept)).join(", ")})
              </button>
            )}
          </div>
        </form>
      ) : (
        <dl className="facts">
          {FIELDS.map((f) => (
            <div key={f.key}>
              <dt>{f.label}</dt>
              <dd>kept {days(r.effective[f.key], f.kept)}</dd>
            </div>
          ))}
        </dl>
      )}
    </section>
  );
}
