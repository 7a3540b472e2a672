import { type FormEvent, useEffect, useState } from "react";
import {
  ApiError,
  api,
  type CapturedDeleted,
  type CapturedMessage,
  type CapturedSummary,
  type EmailServer,
  errorMessage,
  type List,
  type Queued,
  query,
} from "../api";
import { CapturePreview, dayOf } from "../components/CapturePreview";
import { confirmDialog } from "../components/Confirm";
import {
  Alert,
  ErrorAlert,
  formatAddress,
  formatBytes,
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
import { MessagesTabs } from "./Messages";

const LIMIT = 50;
/** How often an open inbox looks for new mail. */
const POLL_MS = 2000;

/** Looks again every POLL_MS while the tab is visible: new mail shows without a reload. */
function usePolling(reload: () => Promise<void>, enabled = true): void {
  useEffect(() => {
    if (!enabled) return;
    const timer = setInterval(() => {
      if (document.visibilityState === "visible") void reload();
    }, POLL_MS);
    return () => clearInterval(timer);
  }, [reload, enabled]);
}

function capturePath(serverId: string, id?: string): string {
  const base = `/api/capture/${encodeURIComponent(serverId)}/messages`;
  return id ? `${base}/${encodeURIComponent(id)}` : base;
}

/** What the Capture servers kept: test emails and everything sent through them. */
export function CapturePage({ serverId }: { serverId?: string }) {
  const { can } = useSession();
  const { search } = useLocation();
  const offset = Number(search.get("offset") ?? 0) || 0;
  const q = search.get("q") ?? "";
  const [words, setWords] = useState(q);
  const [notice, setNotice] = useState<Notice>(null);
  const servers = useLoad(
    async () =>
      can("email-servers.view")
        ? (await api<List<EmailServer>>("GET", "/api/email-servers?limit=500")).items.filter((s) => s.driver === "capture")
        : [],
    [can],
  );
  const chosen = serverId ?? servers.data?.[0]?.id;
  const captured = useLoad(
    () =>
      chosen
        ? api<List<CapturedSummary>>("GET", `${capturePath(chosen)}${query({ limit: LIMIT, offset, q })}`)
        : Promise.resolve(null),
    [chosen, offset, q],
  );
  usePolling(captured.reload, Boolean(chosen));

  const go = (changes: { q?: string; offset?: number }) => {
    const next = { q, offset, ...changes };
    void navigate(`/capture/${chosen}${query({ q: next.q || undefined, offset: next.offset || undefined })}`, { replace: true });
  };

  // The search box filters as you type, a moment after the last key.
  useEffect(() => {
    if (words.trim() === q) return;
    const timer = setTimeout(() => go({ q: words.trim(), offset: 0 }), 250);
    return () => clearTimeout(timer);
  });

  const deleteAll = async () => {
    if (!chosen) return;
    const name = servers.data?.find((s) => s.id === chosen)?.name ?? "this Capture server";
    const ok = await confirmDialog({
      title: `Delete all mail captured by ${name}?`,
      message: "Every captured message goes, not only those shown. The delivery log keeps its entries.",
      confirmLabel: "Delete all",
      danger: true,
    });
    if (!ok) return;
    try {
      const { deleted } = await api<CapturedDeleted>("DELETE", capturePath(chosen));
      setNotice({ kind: "success", text: `Deleted ${deleted} captured ${deleted === 1 ? "message" : "messages"}.` });
      go({ offset: 0 });
      await captured.reload();
    } catch (e) {
      setNotice({ kind: "error", text: errorMessage(e) });
    }
  };

  const total = captured.data?.total ?? 0;
  return (
    <section>
      <PageTitle>Messages</PageTitle>
      <MessagesTabs current="capture" />
      <p className="muted lead">
        Capture servers keep mail here instead of sending it: for development and testing. New mail shows as it arrives.
      </p>
      <NoticeAlert notice={notice} onDismiss={() => setNotice(null)} />
      <ErrorAlert error={servers.error} />
      {chosen && (
        <form className="filters" onSubmit={(e) => e.preventDefault()} aria-label="Captured mail">
          {servers.data && servers.data.length > 0 && (
            <div className="field small">
              <label htmlFor="capture-server">Capture server</label>
              <select id="capture-server" value={chosen} onChange={(e) => void navigate(`/capture/${e.target.value}`)}>
                {servers.data.map((s) => (
                  <option key={s.id} value={s.id}>
                    {s.name}
                  </option>
                ))}
              </select>
            </div>
          )}
          <div className="field">
            <label htmlFor="capture-q">Search</label>
            <input
              id="capture-q"
              type="search"
              value={words}
              placeholder="Subject, from or to"
              onChange={(e) => setWords(e.target.value)}
            />
          </div>
          {can("email-servers.update") && total > 0 && !q && (
            <div className="field filters-reset">
              <button type="button" className="button danger-outline" onClick={() => void deleteAll()}>
                Delete all
              </button>
            </div>
          )}
        </form>
      )}
      {servers.data && servers.data.length === 0 && !serverId && (
        <p className="empty">There is no Capture server. Create one under Email servers to keep test mail here.</p>
      )}
      <ErrorAlert error={captured.error} />
      {chosen && !captured.data && captured.loading && <Loading what="Loading captured mail" />}
      {captured.data && (
        <p className="muted" aria-live="polite">
          {q ? `${total} ${total === 1 ? "message matches" : "messages match"} “${q}”` : `${total} captured`}
        </p>
      )}
      {captured.data &&
        (captured.data.items.length === 0 ? (
          <p className="empty">
            {q ? "Nothing captured matches." : "Nothing captured yet. Send a test email from the server’s page."}
          </p>
        ) : (
          <>
            <table className="table responsive captured">
              <caption className="visually-hidden">Captured messages, newest first</caption>
              <thead>
                <tr>
                  <th scope="col">Subject</th>
                  <th scope="col">To</th>
                  <th scope="col">From</th>
                  <th scope="col">Captured</th>
                  <th scope="col">Size</th>
                </tr>
              </thead>
              <tbody>
                {captured.data.items.map((c) => (
                  <tr key={c.id}>
                    <th scope="row" data-label="Subject">
                      <Link to={`/capture/${chosen}/${c.id}`}>{c.subject || "(no subject)"}</Link>
                      {c.bodyRemovedAt && <div className="muted">Body removed by retention on {dayOf(c.bodyRemovedAt)}</div>}
                    </th>
                    <td data-label="To" className="break">
                      {c.to.map(formatAddress).join(", ") || "—"}
                    </td>
                    <td data-label="From" className="break">
                      {formatAddress(c.from)}
                    </td>
                    <td data-label="Captured">
                      <Time value={c.capturedAt} />
                    </td>
                    <td data-label="Size">{formatBytes(c.size)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            <Pager total={captured.data.total} limit={LIMIT} offset={offset} onChange={(o) => go({ offset: o })} />
          </>
        ))}
    </section>
  );
}

export function CapturedMessagePage({ serverId, id }: { serverId: string; id: string }) {
  const { can } = useSession();
  const [notice, setNotice] = useState<Notice>(null);
  const message = useLoad(() => api<CapturedMessage>("GET", capturePath(serverId, id)), [serverId, id]);
  const subject = message.data?.parsed.subject || "(no subject)";
  const path = capturePath(serverId, id);

  const remove = async () => {
    const ok = await confirmDialog({
      title: `Delete “${subject}”?`,
      message: "The captured copy goes; the delivery log keeps its entry.",
      confirmLabel: "Delete",
      danger: true,
    });
    if (!ok) return;
    try {
      await api("DELETE", path);
      await navigate(`/capture/${serverId}`);
    } catch (e) {
      setNotice({ kind: "error", text: errorMessage(e) });
    }
  };

  return (
    <section>
      <p className="breadcrumb">
        <Link to={`/capture/${serverId}`}>Captured mail</Link> <span aria-hidden="true">›</span>
      </p>
      <div className="page-head">
        <PageTitle title={message.data ? subject : "Captured message"}>{message.data ? subject : "Captured message"}</PageTitle>
        {message.data && (
          <div className="status-line">
            <a className="button" href={`${path}/raw`} download={`${id}.eml`}>
              Download .eml
            </a>
            {can("email-servers.update") && (
              <button type="button" className="button danger-outline" onClick={() => void remove()}>
                Delete
              </button>
            )}
          </div>
        )}
      </div>
      <NoticeAlert notice={notice} onDismiss={() => setNotice(null)} />
      <ErrorAlert error={message.error} />
      {!message.data && message.loading && <Loading what="Loading the message" />}
      {message.data?.bodyRemovedAt && (
        <Alert kind="info">
          Body removed by retention on {dayOf(message.data.bodyRemovedAt)}. The headers that name the message are kept until it
          leaves the delivery log; the text, HTML and attachments are not, so it cannot be released.
        </Alert>
      )}
      {message.data && <CapturePreview message={message.data} downloadBase={path} />}
      {message.data && !message.data.bodyRemovedAt && can("messages.send") && can("messages.view") && (
        <ReleaseForm path={path} message={message.data} canListServers={can("email-servers.view")} />
      )}
    </section>
  );
}

/** Sends a captured message on through a real server, to its recipients or others. */
function ReleaseForm({ path, message, canListServers }: { path: string; message: CapturedMessage; canListServers: boolean }) {
  const servers = useLoad(
    async () =>
      canListServers
        ? (await api<List<EmailServer>>("GET", "/api/email-servers?limit=500")).items.filter((s) => s.driver !== "capture")
        : null,
    [canListServers],
  );
  const original = [...message.parsed.to, ...message.parsed.cc].map((a) => a.address).join(", ");
  const [server, setServer] = useState("");
  const [to, setTo] = useState(original);
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<Queued | null>(null);
  const [error, setError] = useState<unknown>(null);
  const chosen = server || servers.data?.find((s) => s.isDefault)?.name || servers.data?.[0]?.name || "";

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (busy || !chosen) return;
    setBusy(true);
    setError(null);
    setResult(null);
    try {
      const recipients = to
        .split(/[,;\s]+/)
        .map((a) => a.trim())
        .filter(Boolean);
      setResult(
        await api<Queued>("POST", `${path}/release`, {
          server: chosen,
          ...(recipients.length ? { to: recipients } : {}),
        }),
      );
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  if (servers.data && servers.data.length === 0) return null;
  const fieldError = error instanceof ApiError ? error.fields : {};
  return (
    <form className="panel" onSubmit={submit} aria-labelledby="release-heading">
      <h2 id="release-heading">Release</h2>
      <p className="muted">Sends this message for real, through a server that delivers mail. It is queued like any other.</p>
      <div className="grid-2">
        <div className="field">
          <label htmlFor="release-server">Send through</label>
          {servers.data ? (
            <select id="release-server" value={chosen} onChange={(e) => setServer(e.target.value)}>
              {servers.data.map((s) => (
                <option key={s.id} value={s.name}>
                  {s.name}
                </option>
              ))}
            </select>
          ) : (
            <input id="release-server" value={server} onChange={(e) => setServer(e.target.value)} placeholder="Server name" />
          )}
        </div>
        <div className="field">
          <label htmlFor="release-to">To</label>
          <input
            id="release-to"
            value={to}
            onChange={(e) => setTo(e.target.value)}
            aria-invalid={fieldError.to ? true : undefined}
            aria-describedby="release-to-help"
          />
          <p className="help" id="release-to-help">
            Addresses separated by commas; the captured recipients unless you change them.
          </p>
        </div>
      </div>
      <div aria-live="polite">
        <ErrorAlert error={error} />
        {result && (
          <p className="alert alert-success">
            Released: <Link to={`/messages/${result.id}`}>follow it in the delivery log</Link>.
          </p>
        )}
      </div>
      <div className="actions">
        <button type="submit" className="button primary" aria-disabled={busy || !chosen}>
          {busy ? "Releasing…" : "Release"}
        </button>
      </div>
    </form>
  );
}
