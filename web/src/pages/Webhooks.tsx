import { type FormEvent, useState } from "react";
import {
  ApiError,
  api,
  errorMessage,
  type List,
  WEBHOOK_EVENTS,
  type Webhook,
  type WebhookEvent,
  type WebhookWithSecret,
} from "../api";
import {
  Alert,
  CopyButton,
  confirmThenDelete,
  ErrorAlert,
  Loading,
  type Notice,
  NoticeAlert,
  PageTitle,
  Time,
  useLoad,
} from "../components/ui";
import { Link } from "../router";
import { Field } from "./people";

/** The signing secret, shown once after creation or rotation, with how to use it. */
export function SecretOnce({ created, onDismiss }: { created: WebhookWithSecret; onDismiss: () => void }) {
  return (
    <Alert kind="warning" onDismiss={onDismiss}>
      <p>
        <strong>Copy the signing secret of {created.url} now: it is shown only once.</strong>
      </p>
      <p className="copy-line">
        <code className="secret-once" id="new-webhook-secret">
          {created.secret}
        </code>
        <CopyButton text={created.secret} label="Copy the signing secret" />
      </p>
      <p>
        Each request carries <code>webhook-id</code>, <code>webhook-timestamp</code> and <code>webhook-signature</code> (Standard
        Webhooks): your endpoint checks the signature with this secret before trusting the body.
        {created.previousSecretUntil && (
          <>
            {" "}
            The previous secret signs too until <Time value={created.previousSecretUntil} />, so you can switch in your own time.
          </>
        )}
      </p>
    </Alert>
  );
}

/** Application webhooks: list, register (the secret shown once), edit, delete. */
export function WebhooksPage() {
  const hooks = useLoad(() => api<List<Webhook>>("GET", "/api/webhooks"), []);
  const [editing, setEditing] = useState<string | "new" | null>(null);
  const [created, setCreated] = useState<WebhookWithSecret | null>(null);
  const [notice, setNotice] = useState<Notice>(null);

  const remove = (w: Webhook) =>
    confirmThenDelete(
      {
        title: `Delete the webhook to ${w.url}?`,
        message: "It hears of no more events, and its deliveries log goes with it. This cannot be undone.",
        confirmLabel: "Delete the webhook",
        danger: true,
      },
      `/api/webhooks/${encodeURIComponent(w.id)}`,
      `Deleted the webhook to ${w.url}.`,
      hooks.reload,
      setNotice,
    );

  return (
    <section>
      <div className="page-head">
        <PageTitle>Webhooks</PageTitle>
        {editing !== "new" && (
          <button type="button" className="button primary" onClick={() => setEditing("new")}>
            New webhook
          </button>
        )}
      </div>
      <p className="muted">
        Mailroom posts each event of a message (queued, sent, failed…) to your URL as signed JSON, retrying with backoff for about
        a day when it does not answer 2xx. Yours hears of every message; a webhook registered with an API token, of the messages
        that token sent.
      </p>
      <NoticeAlert notice={notice} onDismiss={() => setNotice(null)} />
      {created && <SecretOnce created={created} onDismiss={() => setCreated(null)} />}
      {editing === "new" && (
        <WebhookEditor
          onCancel={() => setEditing(null)}
          onSaved={async (w) => {
            setEditing(null);
            setCreated(w as WebhookWithSecret);
            await hooks.reload();
          }}
        />
      )}
      <ErrorAlert error={hooks.error} />
      {!hooks.data && hooks.loading && <Loading what="Loading webhooks" />}
      {hooks.data && hooks.data.items.length === 0 && <p className="empty">No webhooks yet.</p>}
      {hooks.data && hooks.data.items.length > 0 && (
        <table className="table responsive">
          <caption className="visually-hidden">Webhooks</caption>
          <thead>
            <tr>
              <th scope="col">URL</th>
              <th scope="col">Events</th>
              <th scope="col">State</th>
              <th scope="col">Registered by</th>
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {hooks.data.items.map((w) =>
              editing === w.id ? (
                <tr key={w.id}>
                  <td colSpan={5}>
                    <WebhookEditor
                      webhook={w}
                      onCancel={() => setEditing(null)}
                      onSaved={async () => {
                        setEditing(null);
                        setNotice({ kind: "success", text: `Saved the webhook to ${w.url}.` });
                        await hooks.reload();
                      }}
                    />
                  </td>
                </tr>
              ) : (
                <tr key={w.id}>
                  <th scope="row" data-label="URL" className="break">
                    <Link to={`/webhooks/${encodeURIComponent(w.id)}`}>{w.url}</Link>
                    {w.description && <span className="status-detail">{w.description}</span>}
                  </th>
                  <td data-label="Events">{w.events.join(", ")}</td>
                  <td data-label="State">
                    <WebhookState webhook={w} />
                  </td>
                  <td data-label="Registered by">
                    {w.owner.label} <span className="muted">({w.owner.type})</span>
                  </td>
                  <td className="actions-cell">
                    <div className="row-actions">
                      <button
                        type="button"
                        className="button small"
                        onClick={() => setEditing(w.id)}
                        aria-label={`Edit the webhook to ${w.url}`}
                      >
                        Edit
                      </button>
                      <button
                        type="button"
                        className="button small danger-outline"
                        onClick={() => void remove(w)}
                        aria-label={`Delete the webhook to ${w.url}`}
                      >
                        Delete
                      </button>
                    </div>
                  </td>
                </tr>
              ),
            )}
          </tbody>
        </table>
      )}
    </section>
  );
}

/** Enabled, disabled, or silent (its owner lost the right: a revoked token…) with why. */
export function WebhookState({ webhook }: { webhook: Webhook }) {
  if (!webhook.active) {
    return (
      <>
        <span className="pill pill-failed">Silent</span>
        <span className="status-detail">{webhook.silencedBecause}</span>
      </>
    );
  }
  return webhook.enabled ? <span className="pill pill-sent">Enabled</span> : <span className="pill pill-held">Disabled</span>;
}

export function WebhookEditor({
  webhook,
  onCancel,
  onSaved,
}: {
  webhook?: Webhook;
  onCancel: () => void;
  onSaved: (w: Webhook | WebhookWithSecret) => Promise<void>;
}) {
  const [url, setUrl] = useState(webhook?.url ?? "");
  const [description, setDescription] = useState(webhook?.description ?? "");
  const [events, setEvents] = useState<WebhookEvent[]>(webhook?.events ?? ["sent", "failed"]);
  const [enabled, setEnabled] = useState(webhook?.enabled ?? true);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<string | null>(null);
  const prefix = webhook ? `webhook-${webhook.id}` : "webhook-new";

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setError(null);
    setErrors({});
    const body = { url, description, events, enabled };
    try {
      const saved = webhook
        ? await api<Webhook>("PATCH", `/api/webhooks/${encodeURIComponent(webhook.id)}`, body)
        : await api<WebhookWithSecret>("POST", "/api/webhooks", body);
      await onSaved(saved);
    } catch (e) {
      if (e instanceof ApiError) setErrors(e.fields);
      setError(errorMessage(e));
    }
  };

  return (
    <form className="panel editor" onSubmit={submit} aria-label={webhook ? `Edit the webhook to ${webhook.url}` : "New webhook"}>
      <h2>{webhook ? "Edit the webhook" : "New webhook"}</h2>
      {error && <Alert kind="error">{error}</Alert>}
      <Field
        id={`${prefix}-url`}
        label="URL"
        type="url"
        required
        value={url}
        error={errors.url}
        help="Your endpoint, https:// preferably. Internal addresses are refused unless the operator allows them."
        onChange={setUrl}
      />
      <Field
        id={`${prefix}-description`}
        label="Description"
        value={description}
        error={errors.description}
        help="What listens there, e.g. “Billing app: marks invoices as sent”."
        onChange={setDescription}
      />
      <fieldset className="checks">
        <legend>Events</legend>
        {errors.events && <p className="field-error">{errors.events}</p>}
        {WEBHOOK_EVENTS.map((e) => (
          <div key={e.key} className="check">
            <input
              type="checkbox"
              id={`${prefix}-event-${e.key}`}
              checked={events.includes(e.key)}
              onChange={(x) => setEvents(x.target.checked ? [...events, e.key] : events.filter((k) => k !== e.key))}
            />
            <label htmlFor={`${prefix}-event-${e.key}`}>{e.label}</label>
          </div>
        ))}
      </fieldset>
      <div className="check">
        <input id={`${prefix}-enabled`} type="checkbox" checked={enabled} onChange={(e) => setEnabled(e.target.checked)} />
        <label htmlFor={`${prefix}-enabled`}>Enabled (a disabled webhook records no new events)</label>
      </div>
      <div className="actions">
        <button type="button" className="button" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" className="button primary">
          {webhook ? "Save" : "Create webhook"}
        </button>
      </div>
    </form>
  );
}
