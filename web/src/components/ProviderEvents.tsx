import { type MessageWithAttempts, type ProviderEvent, type Stats, wasSent } from "../api";
import { Link } from "../router";
import { useSession } from "../session";
import { StatusPill, Time } from "./ui";

const PROVIDERS: Record<string, string> = { mailgun: "Mailgun", postmark: "Postmark", ses: "Amazon SES" };

function eventLabel(e: ProviderEvent): string {
  if (e.type !== "bounced") return e.type === "delivered" ? "Delivered" : "Complaint";
  return e.bounceKind === "soft" ? "Soft bounce" : "Hard bounce";
}

/** On a message's page: what the provider reported after sending it, oldest first. */
export function ProviderEventsPanel({ message: m }: { message: MessageWithAttempts }) {
  const { can } = useSession();
  if (!wasSent(m.status) && m.events.length === 0) return null;
  return (
    <section className="panel" aria-labelledby="events-heading">
      <h2 id="events-heading">Provider reports</h2>
      {m.events.length === 0 ? (
        <p className="muted">
          No delivery report, bounce or complaint yet. Providers report them only where their webhook is set up
          {can("email-servers.view") ? (
            <>
              {" "}
              (<Link to={`/servers/${m.server.id}#bounces`}>Bounces and deliveries</Link> on the server’s page)
            </>
          ) : null}
          .
        </p>
      ) : (
        <table className="table responsive events">
          <caption className="visually-hidden">Reports from the provider, oldest first</caption>
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Report</th>
              <th scope="col">Recipient</th>
              <th scope="col">Diagnostic</th>
            </tr>
          </thead>
          <tbody>
            {m.events.map((e, i) => (
              // biome-ignore lint/suspicious/noArrayIndexKey: reports are listed as stored, oldest first
              <tr key={`${e.at}-${i}`}>
                <th scope="row" data-label="When">
                  <Time value={e.at} />
                </th>
                <td data-label="Report">
                  <StatusPill status={e.type} />
                  <span className="status-detail">
                    {eventLabel(e)} · {PROVIDERS[e.provider] ?? e.provider}
                  </span>
                </td>
                <td data-label="Recipient" className="break">
                  {e.recipient ?? "—"}
                </td>
                <td data-label="Diagnostic" className="response">
                  {e.diagnostic ? <code>{e.diagnostic}</code> : "—"}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

type Deliverability = Stats["deliverability"];

/** Amazon SES reviews an account above 5 % bounces or 0.1 % complaints; mailbox providers act on less. */
const HIGH_BOUNCES = 0.05;
const HIGH_COMPLAINTS = 0.001;

function percent(rate: number | null): string {
  if (rate === null) return "—";
  return `${(rate * 100).toFixed(rate > 0 && rate < 0.01 ? 2 : 1)} %`;
}

/** On the overview: per server, the bounce and complaint rates of the messages it sent in the window. */
export function DeliverabilityPanel({ deliverability: d }: { deliverability: Deliverability }) {
  const { can } = useSession();
  return (
    <section className="panel" aria-labelledby="deliverability-heading">
      <h2 id="deliverability-heading">Bounces and complaints, last {d.days} days</h2>
      {d.servers.length === 0 ? (
        <p className="muted">No message was sent in the last {d.days} days.</p>
      ) : (
        <table className="table responsive deliverability">
          <caption className="visually-hidden">Bounce and complaint rates per server, last {d.days} days</caption>
          <thead>
            <tr>
              <th scope="col">Server</th>
              <th scope="col">Sent</th>
              <th scope="col">Reported by the provider</th>
              <th scope="col">Bounced</th>
              <th scope="col">Complaints</th>
            </tr>
          </thead>
          <tbody>
            {d.servers.map((s) => (
              <tr key={s.serverId}>
                <th scope="row" data-label="Server">
                  {can("email-servers.view") ? <Link to={`/servers/${s.serverId}#bounces`}>{s.serverName}</Link> : s.serverName}
                </th>
                <td data-label="Sent">{s.sent}</td>
                <td data-label="Reported by the provider">{s.reported === 0 ? "none (is the webhook set up?)" : s.reported}</td>
                <td data-label="Bounced">
                  {s.bounced} ({percent(s.bounceRate)})
                  {(s.bounceRate ?? 0) > HIGH_BOUNCES && <span className="pill pill-held">High</span>}
                </td>
                <td data-label="Complaints">
                  {s.complained} ({percent(s.complaintRate)})
                  {(s.complaintRate ?? 0) > HIGH_COMPLAINTS && <span className="pill pill-held">High</span>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <p className="muted">
        Messages sent in the last {d.days} days, counted by what their provider reported since: a bounce or complaint that arrives
        later moves its message into these columns.
      </p>
    </section>
  );
}
