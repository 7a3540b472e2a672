import { type FormEvent, useState } from "react";
import { api, type EventSource, type EventSourceSetup, errorMessage, type List } from "../api";
import { confirmDialog } from "./Confirm";
import { Alert, CopyButton, ErrorAlert, type Notice, NoticeAlert, Time, timeAgo, useLoad } from "./ui";

/** Where each provider takes the URL, in its own words. */
const HOW: Record<EventSource["provider"], string> = {
  mailgun:
    "In Mailgun, under Sending › Webhooks for this domain, add this URL for Delivered, Permanent failure, Temporary failure and Spam complaints; then paste the domain’s HTTP webhook signing key here.",
  postmark:
    "In Postmark, under the server’s message stream › Webhooks, add a webhook with the URL Mailroom shows once (its credentials are in it) and tick Delivery, Bounce and Spam complaint.",
  ses: "In Amazon SNS, create an HTTPS subscription to the topic your SES identity or configuration set sends Bounce, Complaint and Delivery notifications to, with the URL Mailroom shows once; Mailroom confirms the subscription itself. Leave raw message delivery off.",
};

/** The server's page: where its provider's reports of deliveries, bounces and complaints come in. */
export function BouncesPanel({ serverId, driver, canEdit }: { serverId: string; driver: string; canEdit: boolean }) {
  const sources = useLoad(
    () => api<List<EventSource>>("GET", `/api/email-servers/${encodeURIComponent(serverId)}/event-sources`),
    [serverId],
  );
  const [notice, setNotice] = useState<Notice>(null);
  const [shown, setShown] = useState<{ provider: string; url: string } | null>(null);
  const [keys, setKeys] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState<string | null>(null);

  const base = `/api/email-servers/${encodeURIComponent(serverId)}/event-sources`;
  const setUp = async (source: EventSource, body: { signingKey?: string }) => {
    if (source.setUp && source.provider !== "mailgun") {
      const ok = await confirmDialog({
        title: `New credentials for ${source.label}?`,
        message: "The URL the provider has now stops working: paste the new one there at once.",
        confirmLabel: "Make new credentials",
        danger: true,
      });
      if (!ok) return;
    }
    setBusy(source.provider);
    setNotice(null);
    setShown(null);
    try {
      const result = await api<EventSourceSetup>("PUT", `${base}/${source.provider}`, body);
      if (result.credentials) setShown({ provider: source.provider, url: result.credentials.url });
      else setNotice({ kind: "success", text: `${source.label}: signing key saved.` });
      setKeys((k) => ({ ...k, [source.provider]: "" }));
      await sources.reload();
    } catch (e) {
      setNotice({ kind: "error", text: errorMessage(e) });
    } finally {
      setBusy(null);
    }
  };
  const remove = async (source: EventSource) => {
    const ok = await confirmDialog({
      title: `Stop taking ${source.label}’s reports?`,
      message: "Its URL is refused from now on; reports already stored stay.",
      confirmLabel: "Remove",
      danger: true,
    });
    if (!ok) return;
    try {
      await api("DELETE", `${base}/${source.provider}`);
      setShown(null);
      setNotice({ kind: "success", text: `${source.label} removed.` });
      await sources.reload();
    } catch (e) {
      setNotice({ kind: "error", text: errorMessage(e) });
    }
  };

  // The server's own provider first.
  const items = [...(sources.data?.items ?? [])].sort((a, b) => Number(b.provider === driver) - Number(a.provider === driver));
  return (
    <section className="panel" id="bounces" aria-labelledby="bounces-heading">
      <h2 id="bounces-heading">Bounces and deliveries</h2>
      <p className="muted">
        A provider reports later what became of a sent message: delivered, bounced or a spam complaint. Hard bounces and
        complaints put the address on the suppression list.
      </p>
      <ErrorAlert error={sources.error} />
      <NoticeAlert notice={notice} onDismiss={() => setNotice(null)} />
      {items.map((source) => {
        const fieldId = `signing-key-${source.provider}`;
        const submitKey = (event: FormEvent) => {
          event.preventDefault();
          void setUp(source, { signingKey: keys[source.provider] ?? "" });
        };
        return (
          <div key={source.provider} className="event-source">
            <h3>
              {source.label}{" "}
              {source.setUp ? (
                <span className="pill pill-ready">Set up</span>
              ) : (
                <span className="pill pill-queued">Not set up</span>
              )}
              {source.provider === driver && <span className="badge badge-muted">This server’s provider</span>}
            </h3>
            <p className="muted">{HOW[source.provider]}</p>
            <div className="copy-line">
              <code>{source.url}</code>
              <CopyButton text={source.url} label={`Copy the ${source.label} endpoint URL`} />
            </div>
            {shown?.provider === source.provider && (
              <Alert kind="warning">
                <strong>Shown once:</strong> paste this URL (its credentials included) in {source.label} now; Mailroom keeps only
                a hash of the password.
                <span className="copy-line">
                  <code>{shown.url}</code>
                  <CopyButton text={shown.url} label={`Copy the ${source.label} URL with its credentials`} />
                </span>
              </Alert>
            )}
            {source.setUp && (
              <p className="muted">
                {source.accepted} reports taken, {source.unmatched} for messages Mailroom did not send, {source.refused} requests
                refused
                {source.lastEventAt && <> · last report {timeAgo(source.lastEventAt)}</>}
                {source.lastRefusedAt && <> · last refusal {timeAgo(source.lastRefusedAt)} (see the audit log)</>}
                {source.topicArn && <> · SNS topic {source.topicArn}</>} · set up by {source.updatedBy}{" "}
                <Time value={source.updatedAt} />
              </p>
            )}
            {canEdit &&
              (source.provider === "mailgun" ? (
                <form className="event-source-form" onSubmit={submitKey}>
                  <div className="field">
                    <label htmlFor={fieldId}>
                      {source.signingKey?.set ? "Replace the webhook signing key" : "Webhook signing key"}
                    </label>
                    <input
                      id={fieldId}
                      type="password"
                      autoComplete="off"
                      value={keys[source.provider] ?? ""}
                      placeholder={
                        source.signingKey?.set ? "Stored (hidden): paste a new one to replace it" : "From Mailgun › Webhooks"
                      }
                      onChange={(e) => setKeys((k) => ({ ...k, [source.provider]: e.target.value }))}
                    />
                  </div>
                  <button
                    type="submit"
                    className="button primary"
                    disabled={busy !== null || !(keys[source.provider] ?? "").trim()}
                  >
                    {source.setUp ? "Save the new key" : "Set up Mailgun"}
                  </button>
                  {source.setUp && (
                    <button type="button" className="button danger" onClick={() => void remove(source)}>
                      Remove
                    </button>
                  )}
                </form>
              ) : (
                <p className="event-source-form">
                  <button type="button" className="button" disabled={busy !== null} onClick={() => void setUp(source, {})}>
                    {source.setUp ? "Make new credentials" : `Set up ${source.label}`}
                  </button>
                  {source.setUp && (
                    <button type="button" className="button danger" onClick={() => void remove(source)}>
                      Remove
                    </button>
                  )}
                </p>
              ))}
          </div>
        );
      })}
    </section>
  );
}
