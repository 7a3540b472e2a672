import { useEffect, useState } from "react";
import { api, type Driver, type EmailServer, errorMessage, type List, query, type Stats } from "../api";
import { confirmDialog } from "../components/Confirm";
import { Alert, ErrorAlert, Loading, PageTitle, StatusPill, timeAgo, useLoad } from "../components/ui";
import { oauthBanner } from "../oauthBanner";
import { Link, navigate, useLocation } from "../router";
import { useSession } from "../session";

export function ServersPage() {
  const { can } = useSession();
  const canEdit = can("email-servers.update");
  const [search, setSearch] = useState("");
  const [q, setQ] = useState("");
  const [notice, setNotice] = useState<{ kind: "success" | "error"; text: string; link?: { to: string; label: string } } | null>(
    null,
  );
  const [busy, setBusy] = useState<string | null>(null);
  // An authorization the callback could not tie to a server comes back here.
  const { search: params } = useLocation();
  const [oauthOutcome] = useState(() => oauthBanner(new URLSearchParams(window.location.search)));
  useEffect(() => {
    if (params.get("oauth")) void navigate("/servers", { replace: true, force: true });
  }, [params]);

  // Filter as you type, without a request per key press.
  useEffect(() => {
    const timer = setTimeout(() => setQ(search.trim()), 150);
    return () => clearTimeout(timer);
  }, [search]);

  const servers = useLoad(() => api<List<EmailServer>>("GET", `/api/email-servers${query({ q, limit: 500 })}`), [q]);
  const drivers = useLoad(() => api<List<Driver>>("GET", "/api/drivers"), []);
  const stats = useLoad(() => (can("messages.view") ? api<Stats>("GET", "/api/stats") : Promise.resolve(null)), [can]);
  const driverLabel = (id: string) => drivers.data?.items.find((d) => d.id === id)?.label ?? id;
  const lastSent = (id: string) => stats.data?.lastSent.find((s) => s.serverId === id)?.at ?? null;

  const act = async (server: EmailServer, what: "copy" | "default" | "delete") => {
    setNotice(null);
    if (what === "delete") {
      const ok = await confirmDialog({
        title: `Delete “${server.name}”?`,
        message: `The email server “${server.name}” and its settings will be deleted. Its delivery history stays in Messages. This cannot be undone.`,
        confirmLabel: `Delete ${server.name}`,
        danger: true,
      });
      if (!ok) return;
    }
    setBusy(`${what}:${server.id}`);
    try {
      let next: typeof notice;
      if (what === "copy") {
        const copy = await api<EmailServer>("POST", `/api/email-servers/${encodeURIComponent(server.id)}/copy`);
        next = {
          kind: "success",
          text: `Copied “${server.name}” as “${copy.name}”.`,
          link: { to: `/servers/${copy.id}`, label: `Open ${copy.name}` },
        };
      } else if (what === "default") {
        await api("POST", `/api/email-servers/${encodeURIComponent(server.id)}/default`);
        next = { kind: "success", text: `“${server.name}” is now the default server.` };
      } else {
        await api("DELETE", `/api/email-servers/${encodeURIComponent(server.id)}`);
        next = { kind: "success", text: `Deleted “${server.name}”.` };
      }
      // The message appears with the list it describes.
      await servers.reload();
      setNotice(next);
    } catch (e) {
      setNotice({ kind: "error", text: errorMessage(e) });
    } finally {
      setBusy(null);
    }
  };

  return (
    <section>
      <div className="page-head">
        <PageTitle>Email servers</PageTitle>
        {canEdit && (
          <Link to="/servers/new" className="button primary">
            New server
          </Link>
        )}
      </div>
      <p className="muted lead">Applications send through these. The default server is used when a message names none.</p>
      <div className="toolbar">
        <div className="field inline">
          <label htmlFor="server-search">Search</label>
          <input
            id="server-search"
            type="search"
            placeholder="Name, driver, host, from address…"
            value={search}
            onChange={(e) => setSearch(e.target.value)}
            aria-describedby="server-count"
          />
        </div>
        <p id="server-count" className="muted" aria-live="polite">
          {servers.data
            ? `${servers.data.total} ${servers.data.total === 1 ? "server" : "servers"}${q ? ` match “${q}”` : ""}`
            : ""}
        </p>
      </div>
      {oauthOutcome && <Alert kind={oauthOutcome.kind}>{oauthOutcome.text}</Alert>}
      {notice && (
        <Alert kind={notice.kind} onDismiss={() => setNotice(null)}>
          {notice.text} {notice.link && <Link to={notice.link.to}>{notice.link.label}</Link>}
        </Alert>
      )}
      <ErrorAlert error={servers.error} />
      {!servers.data && servers.loading && <Loading what="Loading servers" />}
      {servers.data && servers.data.items.length === 0 && (
        <p className="empty">{q ? "No server matches the search." : "No email servers yet."}</p>
      )}
      {servers.data && servers.data.items.length > 0 && (
        <table className="table responsive servers">
          <caption className="visually-hidden">Email servers, the default first</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Driver</th>
              <th scope="col">From</th>
              <th scope="col">Status</th>
              {stats.data && <th scope="col">Last sent</th>}
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {servers.data.items.map((s) => (
              <tr key={s.id}>
                <th scope="row" data-label="Name">
                  <Link to={`/servers/${s.id}`}>{s.name}</Link>
                  {s.isDefault && <span className="badge">Default</span>}
                </th>
                <td data-label="Driver">{driverLabel(s.driver)}</td>
                <td data-label="From" className="break">
                  {s.fromName && <span className="from-name">{s.fromName}</span>}
                  {s.fromAddress || "—"}
                </td>
                <td data-label="Status">
                  <StatusPill status={s.status} />
                  {s.statusDetail && <span className="status-detail">{s.statusDetail}</span>}
                </td>
                {stats.data && (
                  <td data-label="Last sent">
                    {lastSent(s.id) ? <time dateTime={lastSent(s.id)!}>{timeAgo(lastSent(s.id))}</time> : "never"}
                  </td>
                )}
                <td className="actions-cell">
                  <div className="row-actions">
                    <Link to={`/servers/${s.id}`} className="button small" aria-label={`${canEdit ? "Edit" : "View"} ${s.name}`}>
                      {canEdit ? "Edit" : "View"}
                    </Link>
                    {canEdit && (
                      <>
                        <button
                          type="button"
                          className="button small"
                          onClick={() => act(s, "copy")}
                          disabled={busy !== null}
                          aria-label={`Copy ${s.name}`}
                        >
                          Copy
                        </button>
                        {!s.isDefault && (
                          <button
                            type="button"
                            className="button small"
                            onClick={() => act(s, "default")}
                            disabled={busy !== null}
                            aria-label={`Make default: ${s.name}`}
                          >
                            Make default
                          </button>
                        )}
                        {s.isDefault ? (
                          <button
                            type="button"
                            className="button small"
                            disabled
                            aria-describedby={`nodelete-${s.id}`}
                            aria-label={`Delete ${s.name}`}
                          >
                            Delete
                          </button>
                        ) : (
                          <button
                            type="button"
                            className="button small danger-outline"
                            onClick={() => act(s, "delete")}
                            disabled={busy !== null}
                            aria-label={`Delete ${s.name}`}
                          >
                            Delete
                          </button>
                        )}
                      </>
                    )}
                  </div>
                  {canEdit && s.isDefault && (
                    <p id={`nodelete-${s.id}`} className="reason">
                      The default server can’t be deleted: make another one the default first.
                    </p>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
