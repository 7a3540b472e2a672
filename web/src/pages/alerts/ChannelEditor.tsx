import { type FormEvent, useState } from "react";
import { type AlertChannel, ApiError, api, type EmailServer, errorMessage, type NewAlertChannel } from "../../api";
import { Alert } from "../../components/ui";
import { Field } from "../people";

export type SavedChannel = NewAlertChannel;

const TYPES: { value: AlertChannel["type"]; label: string; help: string }[] = [
  {
    value: "webhook",
    label: "Webhook (signed JSON)",
    help: "Mailroom posts a JSON event signed like Standard Webhooks; the signing secret is shown once, after saving.",
  },
  {
    value: "slack",
    label: "Slack or Teams incoming webhook",
    help: 'Posts {"text": …}. The URL is itself a secret: it is stored encrypted and never shown again, only its host.',
  },
  {
    value: "email",
    label: "Email",
    help: "Sent through the server you choose; an alert about that server goes through the default or another ready server.",
  },
];

/** Adds or edits a channel; `channel` absent: a new one. */
export function ChannelEditor({
  channel,
  servers,
  onCancel,
  onSaved,
}: {
  channel?: AlertChannel;
  servers: EmailServer[];
  onCancel: () => void;
  onSaved: (saved: SavedChannel) => Promise<void>;
}) {
  const [type, setType] = useState<AlertChannel["type"]>(channel?.type ?? "webhook");
  const [name, setName] = useState(channel?.name ?? "");
  const [url, setUrl] = useState(channel?.type === "webhook" ? (channel.url ?? "") : "");
  const [serverId, setServerId] = useState(channel?.server?.id ?? servers.find((s) => s.isDefault)?.id ?? "");
  const [recipients, setRecipients] = useState(channel?.recipients.join(", ") ?? "");
  const [enabled, setEnabled] = useState(channel?.enabled ?? true);
  const [rotate, setRotate] = useState(false);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const id = channel ? `channel-${channel.id}` : "channel-new";

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    setErrors({});
    const body: Record<string, unknown> = { name, enabled };
    if (!channel) body.type = type;
    // A Slack URL left empty on edit keeps the stored one (it is never shown).
    if (type !== "email" && (url.trim() !== "" || !channel)) body.url = url.trim();
    if (type === "email") {
      body.serverId = serverId;
      body.recipients = recipients
        .split(/[,;\s]+/)
        .map((a) => a.trim())
        .filter(Boolean);
    }
    if (channel && type === "webhook" && rotate) body.rotateSecret = true;
    try {
      const saved = channel
        ? await api<NewAlertChannel>("PUT", `/api/alerts/channels/${encodeURIComponent(channel.id)}`, body)
        : await api<NewAlertChannel>("POST", "/api/alerts/channels", body);
      await onSaved(saved);
    } catch (e) {
      if (e instanceof ApiError) setErrors(e.fields);
      setError(errorMessage(e));
    } finally {
      setBusy(false);
    }
  };

  const typeHelp = TYPES.find((t) => t.value === type)?.help;
  return (
    <form className="panel editor" onSubmit={submit} aria-label={channel ? `Edit ${channel.name}` : "New alert channel"}>
      <h2>{channel ? `Edit ${channel.name}` : "New alert channel"}</h2>
      {error && <Alert kind="error">{error}</Alert>}
      <div className="field">
        <label htmlFor={`${id}-type`}>Type</label>
        <p className="help" id={`${id}-type-help`}>
          {typeHelp}
        </p>
        <select
          id={`${id}-type`}
          value={type}
          disabled={Boolean(channel)}
          aria-describedby={`${id}-type-help`}
          onChange={(e) => setType(e.target.value as AlertChannel["type"])}
        >
          {TYPES.map((t) => (
            <option key={t.value} value={t.value}>
              {t.label}
            </option>
          ))}
        </select>
      </div>
      <Field
        id={`${id}-name`}
        label="Name"
        required
        value={name}
        error={errors.name}
        onChange={setName}
        help="e.g. “Ops on-call”."
      />
      {type !== "email" && (
        <Field
          id={`${id}-url`}
          label={type === "slack" ? "Incoming webhook URL" : "URL"}
          required={!channel}
          value={url}
          error={errors.url}
          onChange={setUrl}
          help={
            type === "slack" && channel
              ? `Posting to ${channel.host}. Leave empty to keep the stored URL; paste a new one to replace it.`
              : "An https:// address. Loopback, private and plain http:// addresses only if the operator lists them in MAILROOM_ALLOWED_ENDPOINTS."
          }
        />
      )}
      {type === "email" && (
        <>
          <div className="field">
            <label htmlFor={`${id}-server`}>Send through</label>
            <p className="help" id={`${id}-server-help`}>
              An alert about this server is sent through the default or another ready server instead.
            </p>
            <select
              id={`${id}-server`}
              value={serverId}
              aria-describedby={`${id}-server-help`}
              aria-invalid={errors.serverId ? true : undefined}
              onChange={(e) => setServerId(e.target.value)}
            >
              <option value="">Choose a server</option>
              {servers.map((s) => (
                <option key={s.id} value={s.id}>
                  {s.name}
                  {s.isDefault ? " (default)" : ""}
                </option>
              ))}
            </select>
            {errors.serverId && <p className="field-error">{errors.serverId}</p>}
          </div>
          <Field
            id={`${id}-recipients`}
            label="Recipients"
            required
            value={recipients}
            error={errors.recipients ?? Object.entries(errors).find(([k]) => k.startsWith("recipients."))?.[1]}
            onChange={setRecipients}
            help="Up to 20 addresses, separated by commas."
          />
        </>
      )}
      <div className="check">
        <input id={`${id}-enabled`} type="checkbox" checked={enabled} onChange={(e) => setEnabled(e.target.checked)} />
        <label htmlFor={`${id}-enabled`}>On: alerts go to this channel</label>
      </div>
      {channel && type === "webhook" && (
        <div className="check">
          <input id={`${id}-rotate`} type="checkbox" checked={rotate} onChange={(e) => setRotate(e.target.checked)} />
          <label htmlFor={`${id}-rotate`}>New signing secret (shown once after saving; the old one stops verifying)</label>
        </div>
      )}
      <div className="actions">
        <button type="submit" className="button primary" disabled={busy}>
          {busy ? "Saving…" : channel ? "Save channel" : "Add channel"}
        </button>
        <button type="button" className="button" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}
