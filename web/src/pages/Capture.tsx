import { api, type CapturedMessage, type CapturedSummary, type EmailServer, type List, query } from "../api";
import { CapturePreview } from "../components/CapturePreview";
import { ErrorAlert, formatAddress, formatBytes, Loading, Pager, PageTitle, Time, useLoad } from "../components/ui";
import { Link, navigate, useLocation } from "../router";
import { useSession } from "../session";
import { MessagesTabs } from "./Messages";

const LIMIT = 50;

/** What the Capture servers kept: test emails and everything sent through them. */
export function CapturePage({ serverId }: { serverId?: string }) {
  const { can } = useSession();
  const { search } = useLocation();
  const offset = Number(search.get("offset") ?? 0) || 0;
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
        ? api<List<CapturedSummary>>(
            "GET",
            `/api/capture/${encodeURIComponent(chosen)}/messages${query({ limit: LIMIT, offset })}`,
          )
        : Promise.resolve(null),
    [chosen, offset],
  );

  return (
    <section>
      <PageTitle>Messages</PageTitle>
      <MessagesTabs current="capture" />
      <p className="muted lead">Capture servers keep mail here instead of sending it: for development and testing.</p>
      <ErrorAlert error={servers.error} />
      {servers.data && servers.data.length > 0 && (
        <div className="field inline">
          <label htmlFor="capture-server">Capture server</label>
          <select id="capture-server" value={chosen ?? ""} onChange={(e) => void navigate(`/capture/${e.target.value}`)}>
            {servers.data.map((s) => (
              <option key={s.id} value={s.id}>
                {s.name}
              </option>
            ))}
          </select>
        </div>
      )}
      {servers.data && servers.data.length === 0 && !serverId && (
        <p className="empty">There is no Capture server. Create one under Email servers to keep test mail here.</p>
      )}
      <ErrorAlert error={captured.error} />
      {chosen && !captured.data && captured.loading && <Loading what="Loading captured mail" />}
      {captured.data &&
        (captured.data.items.length === 0 ? (
          <p className="empty">Nothing captured yet. Send a test email from the server’s page.</p>
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
            <Pager
              total={captured.data.total}
              limit={LIMIT}
              offset={offset}
              onChange={(o) => void navigate(`/capture/${chosen}${query({ offset: o || undefined })}`, { replace: true })}
            />
          </>
        ))}
    </section>
  );
}

export function CapturedMessagePage({ serverId, id }: { serverId: string; id: string }) {
  const message = useLoad(
    () => api<CapturedMessage>("GET", `/api/capture/${encodeURIComponent(serverId)}/messages/${encodeURIComponent(id)}`),
    [serverId, id],
  );
  const subject = message.data?.parsed.subject || "(no subject)";
  return (
    <section>
      <p className="breadcrumb">
        <Link to={`/capture/${serverId}`}>Captured mail</Link> <span aria-hidden="true">›</span>
      </p>
      <PageTitle title={message.data ? subject : "Captured message"}>{message.data ? subject : "Captured message"}</PageTitle>
      <ErrorAlert error={message.error} />
      {!message.data && message.loading && <Loading what="Loading the message" />}
      {message.data && <CapturePreview message={message.data} />}
    </section>
  );
}
