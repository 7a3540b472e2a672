import { useEffect, useState } from "react";
import { api, describeSource, type EmailServer, type List, type Message, query } from "../api";
import { ErrorAlert, formatAddress, Loading, Pager, PageTitle, StatusPill, Time, useLoad } from "../components/ui";
import { Link, navigate, useLocation } from "../router";
import { useSession } from "../session";
import { attemptsText } from "./MessagePage";

const LIMIT = 50;
const STATUSES = ["queued", "sending", "sent", "delivered", "bounced", "complained", "failed", "held"];

/** datetime-local wants "YYYY-MM-DDTHH:MM" in local time. */
function toLocalInput(iso: string | null): string {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function fromLocalInput(value: string): string {
  if (!value) return "";
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? "" : d.toISOString();
}

export function MessagesTabs({ current }: { current: "log" | "capture" }) {
  return (
    <nav className="tabs" aria-label="Messages">
      <Link to="/messages" aria-current={current === "log" ? "page" : undefined}>
        Delivery log
      </Link>
      <Link to="/capture" aria-current={current === "capture" ? "page" : undefined}>
        Captured mail
      </Link>
    </nav>
  );
}

export function MessagesPage() {
  const { can } = useSession();
  const { search } = useLocation();
  const filters = {
    status: search.get("status") ?? "",
    server: search.get("server") ?? "",
    recipient: search.get("recipient") ?? "",
    q: search.get("q") ?? "",
    since: search.get("since") ?? "",
    until: search.get("until") ?? "",
  };
  const offset = Number(search.get("offset") ?? 0) || 0;
  const [words, setWords] = useState(filters.q);

  const setFilter = (changes: Partial<typeof filters> & { offset?: number }) => {
    const next = { ...filters, offset: 0, ...changes };
    void navigate(`/messages${query({ ...next, offset: next.offset || undefined })}`, { replace: true });
  };

  // The search box filters as you type, a moment after the last key.
  useEffect(() => {
    if (words === filters.q) return;
    const timer = setTimeout(() => setFilter({ q: words.trim() }), 250);
    return () => clearTimeout(timer);
  });

  const key = JSON.stringify({ ...filters, offset });
  const messages = useLoad(() => api<List<Message>>("GET", `/api/messages${query({ ...filters, limit: LIMIT, offset })}`), [key]);
  const servers = useLoad(
    () => (can("email-servers.view") ? api<List<EmailServer>>("GET", "/api/email-servers?limit=500") : Promise.resolve(null)),
    [can],
  );

  return (
    <section>
      <PageTitle>Messages</PageTitle>
      <MessagesTabs current="log" />
      <form className="filters" onSubmit={(e) => e.preventDefault()} aria-label="Filter messages">
        <div className="field small">
          <label htmlFor="filter-status">Status</label>
          <select id="filter-status" value={filters.status} onChange={(e) => setFilter({ status: e.target.value })}>
            <option value="">Any status</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s.charAt(0).toUpperCase() + s.slice(1)}
              </option>
            ))}
          </select>
        </div>
        <div className="field small">
          <label htmlFor="filter-server">Server</label>
          {servers.data ? (
            <select id="filter-server" value={filters.server} onChange={(e) => setFilter({ server: e.target.value })}>
              <option value="">Any server</option>
              {servers.data.items.map((s) => (
                <option key={s.id} value={s.id}>
                  {s.name}
                </option>
              ))}
            </select>
          ) : (
            <input
              id="filter-server"
              value={filters.server}
              placeholder="Server name or id"
              onChange={(e) => setFilter({ server: e.target.value })}
            />
          )}
        </div>
        <div className="field">
          <label htmlFor="filter-q">Search</label>
          <input
            id="filter-q"
            type="search"
            value={words}
            placeholder="Subject or recipient"
            aria-describedby="filter-q-help"
            onChange={(e) => setWords(e.target.value)}
          />
          <span id="filter-q-help" className="visually-hidden">
            Finds messages whose subject or a recipient’s address contains what you type.
          </span>
        </div>
        <div className="field">
          <label htmlFor="filter-since">From</label>
          <input
            id="filter-since"
            type="datetime-local"
            value={toLocalInput(filters.since || null)}
            onChange={(e) => setFilter({ since: fromLocalInput(e.target.value) })}
          />
        </div>
        <div className="field">
          <label htmlFor="filter-until">Until</label>
          <input
            id="filter-until"
            type="datetime-local"
            value={toLocalInput(filters.until || null)}
            onChange={(e) => setFilter({ until: fromLocalInput(e.target.value) })}
          />
        </div>
        {Object.values(filters).some(Boolean) && (
          <div className="field filters-reset">
            <button
              type="button"
              className="button"
              onClick={() => {
                setWords("");
                void navigate("/messages", { replace: true });
              }}
            >
              Clear filters
            </button>
          </div>
        )}
      </form>
      <ErrorAlert error={messages.error} />
      {!messages.data && messages.loading && <Loading what="Loading messages" />}
      {messages.data && (
        <>
          <p className="muted" aria-live="polite">
            {messages.data.total} {messages.data.total === 1 ? "message" : "messages"}
          </p>
          {messages.data.items.length === 0 ? (
            <p className="empty">No message matches these filters.</p>
          ) : (
            <table className="table responsive messages">
              <caption className="visually-hidden">Messages, newest first</caption>
              <thead>
                <tr>
                  <th scope="col">Subject</th>
                  <th scope="col">Status</th>
                  <th scope="col">To</th>
                  <th scope="col">Server</th>
                  <th scope="col">Created</th>
                  <th scope="col">Attempts</th>
                </tr>
              </thead>
              <tbody>
                {messages.data.items.map((m) => (
                  <tr key={m.id}>
                    <th scope="row" data-label="Subject">
                      <Link to={`/messages/${m.id}`}>{m.subject || "(no subject)"}</Link>
                      {m.test && <span className="badge">Test</span>}
                    </th>
                    <td data-label="Status">
                      <StatusPill status={m.status} />
                      {m.lastError && m.status !== "sent" && m.status !== "delivered" && (
                        <span className="status-detail">{m.lastError.message}</span>
                      )}
                    </td>
                    <td data-label="To" className="break">
                      {m.to.map(formatAddress).join(", ") || "—"}
                    </td>
                    <td data-label="Server">
                      {m.server.name}
                      {m.source?.kind === "smtp" && (
                        <span className="badge badge-muted" title={describeSource(m.source)}>
                          SMTP
                        </span>
                      )}
                    </td>
                    <td data-label="Created">
                      <Time value={m.createdAt} />
                    </td>
                    <td data-label="Attempts">{attemptsText(m)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <Pager total={messages.data.total} limit={LIMIT} offset={offset} onChange={(o) => setFilter({ offset: o })} />
        </>
      )}
    </section>
  );
}
