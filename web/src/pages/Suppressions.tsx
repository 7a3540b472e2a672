import { type FormEvent, useEffect, useState } from "react";
import {
  ApiError,
  api,
  type EmailServer,
  errorMessage,
  type List,
  query,
  type Suppression,
  type SuppressionSettings,
} from "../api";
import {
  Alert,
  confirmThenDelete,
  ErrorAlert,
  Loading,
  type Notice,
  NoticeAlert,
  Pager,
  PageTitle,
  Time,
  useLoad,
} from "../components/ui";
import { Link, navigate, useLocation } from "../router";
import { useSession } from "../session";
import { Field } from "./people";

const LIMIT = 50;
const REASONS: Record<Suppression["reason"], string> = {
  hard_bounce: "Hard bounce",
  complaint: "Complaint",
  manual: "Added by hand",
};

/** Addresses Mailroom refuses to send to: list, search, add, remove; and where bounces suppress. */
export function SuppressionsPage() {
  const { can } = useSession();
  const canEdit = can("suppressions.update");
  const { search } = useLocation();
  const filters = { q: search.get("q") ?? "", reason: search.get("reason") ?? "" };
  const offset = Number(search.get("offset") ?? 0) || 0;
  const [words, setWords] = useState(filters.q);
  const [adding, setAdding] = useState(false);
  const [notice, setNotice] = useState<Notice>(null);

  const setFilter = (changes: Partial<typeof filters> & { offset?: number }) => {
    const next = { ...filters, offset: 0, ...changes };
    void navigate(`/suppressions${query({ ...next, offset: next.offset || undefined })}`, { replace: true });
  };
  useEffect(() => {
    if (words === filters.q) return;
    const timer = setTimeout(() => setFilter({ q: words.trim() }), 250);
    return () => clearTimeout(timer);
  });

  const key = JSON.stringify({ ...filters, offset });
  const list = useLoad(
    () => api<List<Suppression>>("GET", `/api/suppressions${query({ ...filters, limit: LIMIT, offset })}`),
    [key],
  );
  const servers = useLoad(
    () => (can("email-servers.view") ? api<List<EmailServer>>("GET", "/api/email-servers?limit=500") : Promise.resolve(null)),
    [can],
  );

  const remove = (s: Suppression) =>
    confirmThenDelete(
      {
        title: `Accept mail to ${s.address} again?`,
        message: `Mailroom stops refusing it ${s.server ? `through ${s.server.name ?? "its server"}` : "on every server"}. Remove it only if the address can receive mail again.`,
        confirmLabel: "Remove from the list",
      },
      `/api/suppressions/${encodeURIComponent(s.id)}`,
      `${s.address} removed: mail to it is accepted again.`,
      list.reload,
      setNotice,
    );

  return (
    <section>
      <div className="page-head">
        <PageTitle>Suppressions</PageTitle>
        {canEdit && !adding && (
          <button type="button" className="button primary" onClick={() => setAdding(true)}>
            Add an address
          </button>
        )}
      </div>
      <p className="muted">
        Mailroom refuses to accept a message to these addresses (<code>recipient_suppressed</code>). Hard bounces and spam
        complaints reported by a server’s provider add them by themselves.
      </p>
      <NoticeAlert notice={notice} onDismiss={() => setNotice(null)} />
      {adding && (
        <AddSuppression
          servers={servers.data?.items ?? []}
          onCancel={() => setAdding(false)}
          onAdded={async (s) => {
            setAdding(false);
            setNotice({ kind: "success", text: `${s.address} added: messages to it are refused from now on.` });
            await list.reload();
          }}
        />
      )}
      <ScopeSetting canEdit={can("settings.update")} />
      <form className="filters" onSubmit={(e) => e.preventDefault()} aria-label="Filter the suppression list">
        <div className="field">
          <label htmlFor="suppression-q">Search</label>
          <input
            id="suppression-q"
            type="search"
            value={words}
            placeholder="Address"
            onChange={(e) => setWords(e.target.value)}
          />
        </div>
        <div className="field small">
          <label htmlFor="suppression-reason">Reason</label>
          <select id="suppression-reason" value={filters.reason} onChange={(e) => setFilter({ reason: e.target.value })}>
            <option value="">Any reason</option>
            {Object.entries(REASONS).map(([value, label]) => (
              <option key={value} value={value}>
                {label}
              </option>
            ))}
          </select>
        </div>
      </form>
      <ErrorAlert error={list.error} />
      {!list.data && list.loading && <Loading what="Loading the suppression list" />}
      {list.data && (
        <>
          <p className="muted" aria-live="polite">
            {list.data.total} {list.data.total === 1 ? "address" : "addresses"}
          </p>
          {list.data.items.length === 0 ? (
            <p className="empty">No address is suppressed{filters.q || filters.reason ? " with these filters" : ""}.</p>
          ) : (
            <table className="table responsive">
              <caption className="visually-hidden">Suppressed addresses, newest first</caption>
              <thead>
                <tr>
                  <th scope="col">Address</th>
                  <th scope="col">Where</th>
                  <th scope="col">Why</th>
                  <th scope="col">Since</th>
                  <th scope="col">
                    <span className="visually-hidden">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {list.data.items.map((s) => (
                  <tr key={s.id}>
                    <th scope="row" data-label="Address" className="break">
                      {s.address}
                    </th>
                    <td data-label="Where">{s.server ? (s.server.name ?? s.server.id) : "Every server"}</td>
                    <td data-label="Why">
                      {REASONS[s.reason]}
                      {s.messageId && (
                        <>
                          {" "}
                          (<Link to={`/messages/${s.messageId}`}>the message</Link>)
                        </>
                      )}
                      {s.detail && <span className="status-detail">{s.detail}</span>}
                    </td>
                    <td data-label="Since">
                      <Time value={s.createdAt} />
                      <span className="status-detail">by {s.createdBy}</span>
                    </td>
                    <td className="actions-cell">
                      {canEdit && (
                        <button
                          type="button"
                          className="button small danger-outline"
                          onClick={() => void remove(s)}
                          aria-label={`Remove ${s.address}`}
                        >
                          Remove
                        </button>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <Pager total={list.data.total} limit={LIMIT} offset={offset} onChange={(o) => setFilter({ offset: o })} />
        </>
      )}
    </section>
  );
}

function AddSuppression({
  servers,
  onCancel,
  onAdded,
}: {
  servers: EmailServer[];
  onCancel: () => void;
  onAdded: (s: Suppression) => Promise<void>;
}) {
  const [address, setAddress] = useState("");
  const [server, setServer] = useState("");
  const [detail, setDetail] = useState("");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<string | null>(null);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setError(null);
    setErrors({});
    try {
      await onAdded(
        await api<Suppression>("POST", "/api/suppressions", { address, server: server || null, detail: detail || null }),
      );
    } catch (e) {
      if (e instanceof ApiError) setErrors(e.fields);
      setError(errorMessage(e));
    }
  };

  return (
    <form className="panel editor" onSubmit={submit} aria-label="Add an address to the suppression list">
      <h2>Add an address</h2>
      {error && <Alert kind="error">{error}</Alert>}
      <div className="grid-2">
        <Field id="suppression-address" label="Address" required value={address} error={errors.address} onChange={setAddress} />
        <div className="field">
          <label htmlFor="suppression-server">Where</label>
          <select id="suppression-server" value={server} onChange={(e) => setServer(e.target.value)}>
            <option value="">Every server</option>
            {servers.map((s) => (
              <option key={s.id} value={s.id}>
                {s.name}
              </option>
            ))}
          </select>
          {errors.server && <p className="field-error">{errors.server}</p>}
        </div>
      </div>
      <Field
        id="suppression-detail"
        label="Note"
        value={detail}
        error={errors.detail}
        help="Why, for the next admin (e.g. “asked to stop on 3 March”)."
        onChange={setDetail}
      />
      <div className="actions">
        <button type="button" className="button" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" className="button primary">
          Add to the list
        </button>
      </div>
    </form>
  );
}

/** Where a hard bounce or complaint suppresses its address: the reporting server, or every server. */
function ScopeSetting({ canEdit }: { canEdit: boolean }) {
  const settings = useLoad(() => api<SuppressionSettings>("GET", "/api/settings/suppressions"), []);
  const [notice, setNotice] = useState<Notice>(null);
  const s = settings.data;
  if (!s) return null;
  const change = async (scope: SuppressionSettings["scope"]) => {
    try {
      settings.setData(await api<SuppressionSettings>("PUT", "/api/settings/suppressions", { scope }));
      setNotice({ kind: "success", text: "Saved: entries already on the list stay as they are." });
    } catch (e) {
      setNotice({ kind: "error", text: errorMessage(e) });
    }
  };
  return (
    <fieldset className="checks panel">
      <legend>When a provider reports a hard bounce or a complaint, suppress the address</legend>
      <NoticeAlert notice={notice} onDismiss={() => setNotice(null)} />
      {(
        [
          ["everywhere", "For every server", "The address is bad (or unwilling) whichever server sends."],
          ["server", "For the reporting server only", "Other servers may still send to it."],
        ] as const
      ).map(([value, label, help]) => (
        <div key={value} className="check">
          <input
            type="radio"
            id={`scope-${value}`}
            name="suppression-scope"
            checked={s.scope === value}
            disabled={!canEdit}
            onChange={() => void change(value)}
            aria-describedby={`scope-${value}-help`}
          />
          <div>
            <label htmlFor={`scope-${value}`}>{label}</label>
            <p className="help check-help" id={`scope-${value}-help`}>
              {help}
            </p>
          </div>
        </div>
      ))}
      {!canEdit && <p className="muted">Changing this needs the “Update settings” permission.</p>}
    </fieldset>
  );
}
