import { type FormEvent, useState } from "react";
import { ApiError, api, type EmailServer, errorMessage, type List, type Permission, type Token } from "../api";
import { SmtpSettings } from "../components/SmtpSettings";
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
  timeAgo,
  useLoad,
} from "../components/ui";
import { Field, PeopleTabs, PermissionChecks } from "./people";

export function TokensPage() {
  const tokens = useLoad(() => api<List<Token>>("GET", "/api/tokens"), []);
  const servers = useLoad(() => api<List<EmailServer>>("GET", "/api/email-servers?limit=500").catch(() => null), []);
  const [creating, setCreating] = useState(false);
  const [created, setCreated] = useState<{ name: string; token: string } | null>(null);
  const [notice, setNotice] = useState<Notice>(null);
  const serverName = (id: string) => servers.data?.items.find((s) => s.id === id)?.name ?? id;

  const revoke = (t: Token) =>
    confirmThenDelete(
      {
        title: `Revoke the token ${t.name}?`,
        message: `Applications using ${t.prefix} get 401 from now on. This cannot be undone.`,
        confirmLabel: `Revoke ${t.name}`,
        danger: true,
      },
      `/api/tokens/${encodeURIComponent(t.id)}`,
      `Revoked ${t.name}.`,
      tokens.reload,
      setNotice,
    );

  return (
    <section>
      <div className="page-head">
        <PageTitle>API tokens</PageTitle>
        {!creating && (
          <button type="button" className="button primary" onClick={() => setCreating(true)}>
            New token
          </button>
        )}
      </div>
      <PeopleTabs current="tokens" />
      <NoticeAlert notice={notice} onDismiss={() => setNotice(null)} />
      {created && (
        <Alert kind="warning" onDismiss={() => setCreated(null)}>
          <p>
            <strong>Copy the token “{created.name}” now: it is shown only once.</strong>
          </p>
          <p className="copy-line">
            <code className="secret-once" id="new-token">
              {created.token}
            </code>
            <CopyButton text={created.token} label="Copy the new token" />
          </p>
          <p>
            Applications send it as <code>Authorization: Bearer &lt;token&gt;</code>.
          </p>
          <SmtpSettings tokenName={created.name} />
        </Alert>
      )}
      {creating && (
        <TokenEditor
          servers={servers.data?.items ?? []}
          onCancel={() => setCreating(false)}
          onCreated={async (name, token) => {
            setCreating(false);
            setCreated({ name, token });
            await tokens.reload();
          }}
        />
      )}
      <ErrorAlert error={tokens.error} />
      {!tokens.data && tokens.loading && <Loading what="Loading tokens" />}
      {tokens.data && tokens.data.items.length === 0 && <p className="empty">No API tokens yet.</p>}
      {tokens.data && tokens.data.items.length > 0 && (
        <table className="table responsive">
          <caption className="visually-hidden">API tokens</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Permissions</th>
              <th scope="col">Servers</th>
              <th scope="col">Last used</th>
              <th scope="col">Expires</th>
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {tokens.data.items.map((t) => (
              <tr key={t.id}>
                <th scope="row" data-label="Name">
                  {t.name} <code className="muted">{t.prefix}</code>
                </th>
                <td data-label="Permissions">{t.permissions.join(", ")}</td>
                <td data-label="Servers">{t.serverIds ? t.serverIds.map(serverName).join(", ") : "All"}</td>
                <td data-label="Last used">{t.lastUsedAt ? timeAgo(t.lastUsedAt) : "never"}</td>
                <td data-label="Expires">{t.expiresAt ? <Time value={t.expiresAt} /> : "never"}</td>
                <td className="actions-cell">
                  <button
                    type="button"
                    className="button small danger-outline"
                    onClick={() => void revoke(t)}
                    aria-label={`Revoke ${t.name}`}
                  >
                    Revoke
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function TokenEditor({
  servers,
  onCancel,
  onCreated,
}: {
  servers: EmailServer[];
  onCancel: () => void;
  onCreated: (name: string, token: string) => Promise<void>;
}) {
  const [name, setName] = useState("");
  const [permissions, setPermissions] = useState<Permission[]>(["messages.send"]);
  const [limit, setLimit] = useState(false);
  const [serverIds, setServerIds] = useState<string[]>([]);
  const [expires, setExpires] = useState("");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<string | null>(null);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setError(null);
    try {
      const result = await api<Token & { token: string }>("POST", "/api/tokens", {
        name,
        permissions,
        serverIds: limit ? serverIds : null,
        expiresAt: expires ? new Date(`${expires}T23:59:59`).toISOString() : null,
      });
      await onCreated(result.name, result.token);
    } catch (e) {
      if (e instanceof ApiError) setErrors(e.fields);
      setError(errorMessage(e));
    }
  };

  return (
    <form className="panel editor" onSubmit={submit} aria-label="New API token">
      <h2>New API token</h2>
      {error && <Alert kind="error">{error}</Alert>}
      <div className="grid-2">
        <Field
          id="token-name"
          label="Name"
          required
          value={name}
          error={errors.name}
          help="Which application uses it, e.g. “Billing app”."
          onChange={setName}
        />
        <Field
          id="token-expires"
          label="Expires on"
          type="date"
          value={expires}
          error={errors.expiresAt}
          help="Leave empty for a token that does not expire."
          onChange={setExpires}
        />
      </div>
      <PermissionChecks idPrefix="token-perm" value={permissions} onChange={setPermissions} legend="Permissions" />
      {errors.permissions && <p className="field-error">{errors.permissions}</p>}
      {servers.length > 0 && (
        <fieldset className="checks">
          <legend>Email servers</legend>
          <div className="check">
            <input id="token-limit" type="checkbox" checked={limit} onChange={(e) => setLimit(e.target.checked)} />
            <label htmlFor="token-limit">Only some servers</label>
          </div>
          {limit &&
            servers.map((s) => (
              <div key={s.id} className="check indent">
                <input
                  type="checkbox"
                  id={`token-server-${s.id}`}
                  checked={serverIds.includes(s.id)}
                  onChange={(e) => setServerIds(e.target.checked ? [...serverIds, s.id] : serverIds.filter((x) => x !== s.id))}
                />
                <label htmlFor={`token-server-${s.id}`}>{s.name}</label>
              </div>
            ))}
        </fieldset>
      )}
      <div className="actions">
        <button type="button" className="button" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" className="button primary">
          Create token
        </button>
      </div>
    </form>
  );
}
