import { type FormEvent, useState } from "react";
import {
  ApiError,
  api,
  type EmailServer,
  errorMessage,
  type Info,
  type List,
  type Manageable,
  type NewToken,
  type Permission,
  type Token,
} from "../api";
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
import { useSession } from "../session";
import { Field, NotManageable, PermissionChecks } from "./people";

export function TokensPage() {
  const tokens = useLoad(() => api<List<Token & Manageable>>("GET", "/api/tokens"), []);
  const servers = useLoad(() => api<List<EmailServer>>("GET", "/api/email-servers?limit=500").catch(() => null), []);
  const info = useLoad(() => api<Info>("GET", "/api/info").catch(() => null), []);
  const [creating, setCreating] = useState(false);
  const [created, setCreated] = useState<NewToken | null>(null);
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
      {created && info.data && <FirstMessage created={created} info={info.data} servers={servers.data?.items ?? []} />}
      {creating && (
        <TokenEditor
          servers={servers.data?.items ?? []}
          onCancel={() => setCreating(false)}
          onCreated={async (result) => {
            setCreating(false);
            setCreated(result);
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
                  <NotManageable item={t} />
                  {t.manageable !== false && (
                    <button
                      type="button"
                      className="button small danger-outline"
                      onClick={() => void revoke(t)}
                      aria-label={`Revoke ${t.name}`}
                    >
                      Revoke
                    </button>
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

function TokenEditor({
  servers,
  onCancel,
  onCreated,
}: {
  servers: EmailServer[];
  onCancel: () => void;
  onCreated: (created: NewToken) => Promise<void>;
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
      const result = await api<NewToken>("POST", "/api/tokens", {
        name,
        permissions,
        serverIds: limit ? serverIds : null,
        expiresAt: expires ? new Date(`${expires}T23:59:59`).toISOString() : null,
      });
      await onCreated(result);
    } catch (e) {
      if (e instanceof ApiError) setErrors(e.fields);
      setError(errorMessage(e));
    }
  };

  return (
    <form className="panel editor" onSubmit={submit} aria-label="New API token">
      <h2>New API token</h2>
      <p className="muted">
        The token is yours: it acts with these permissions only while you hold them yourself, and stops working if your account is
        disabled or deleted.
      </p>
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

/** A value inside single quotes for a POSIX shell. */
function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/**
 * From the new token to a first message: a `curl` that runs as it is (this Mailroom's public
 * URL, the token, the signed-in user as recipient), the same over SMTP when Mailroom listens
 * for it, and the API reference.
 */
function FirstMessage({ created, info, servers }: { created: NewToken; info: Info; servers: EmailServer[] }) {
  const { user } = useSession();
  if (!created.permissions.includes("messages.send")) {
    return (
      <section className="panel" aria-labelledby="first-message-heading">
        <h2 id="first-message-heading">Use the token</h2>
        <p>
          This token cannot send messages (it lacks “Send and retry messages”). Every call it may make is in the{" "}
          <a href={info.apiDocsUrl}>API reference</a>.
        </p>
      </section>
    );
  }
  // A token limited to some servers must name one; otherwise the default server sends.
  const server = created.serverIds ? servers.find((s) => created.serverIds?.includes(s.id)) : undefined;
  const body = {
    ...(server ? { server: server.name } : {}),
    to: user.email,
    subject: "Hello from Mailroom",
    text: "The token works.",
  };
  const curl = [
    `curl -X POST ${shellQuote(`${info.publicUrl}/api/messages`)} \\`,
    `  -H ${shellQuote(`Authorization: Bearer ${created.token}`)} \\`,
    `  -H 'Content-Type: application/json' \\`,
    `  -d ${shellQuote(JSON.stringify(body))}`,
  ].join("\n");
  const smtp = info.smtp;
  const smtpPort = smtp ? (smtp.port ?? smtp.tlsPort) : null;
  const from = server?.fromAddress || servers.find((s) => s.isDefault)?.fromAddress || user.email;
  const smtpExample =
    smtp && smtpPort
      ? [
          // A generated certificate cannot be verified by a client: the example says so rather than fail.
          `curl --url ${shellQuote(`${smtp.port ? "smtp" : "smtps"}://${smtp.host}:${smtpPort}`)} ${smtp.port ? "--ssl-reqd " : ""}${smtp.selfSigned ? "--insecure " : ""}\\`,
          `  --user ${shellQuote(`token:${created.token}`)} \\`,
          `  --mail-from ${shellQuote(from)} --mail-rcpt ${shellQuote(user.email)} \\`,
          `  --upload-file - <<'EOF'`,
          `From: ${from}`,
          `To: ${user.email}`,
          "Subject: Hello from Mailroom over SMTP",
          "",
          "The token works over SMTP too.",
          "EOF",
        ].join("\n")
      : null;
  return (
    <section className="panel" aria-labelledby="first-message-heading">
      <h2 id="first-message-heading">Send a first message with “{created.name}”</h2>
      <p>
        Run this in a terminal: it queues a message to you{server ? ` through “${server.name}”` : " through the default server"}.
        The answer’s <code>id</code> finds it in the delivery log.
      </p>
      <div className="snippet">
        {/* biome-ignore lint/a11y/noNoninteractiveTabindex: a long command scrolls, so keyboard users must be able to reach it */}
        <pre tabIndex={0}>
          <code id="curl-example">{curl}</code>
        </pre>
        <CopyButton text={curl} label="Copy the curl command" />
      </div>
      {smtpExample && (
        <>
          <h3>Over SMTP</h3>
          <p>
            Applications that speak SMTP log in with the token as the password, on port {smtpPort}.
            {smtp?.selfSigned &&
              " Mailroom's certificate is self-signed, so the example skips its verification (--insecure): pin its fingerprint (shown at start) or give Mailroom a real certificate (MAILROOM_SMTP_TLS_CERT) before using it across a network."}
          </p>
          <div className="snippet">
            {/* biome-ignore lint/a11y/noNoninteractiveTabindex: a long command scrolls, so keyboard users must be able to reach it */}
            <pre tabIndex={0}>
              <code id="smtp-example">{smtpExample}</code>
            </pre>
            <CopyButton text={smtpExample} label="Copy the SMTP example" />
          </div>
        </>
      )}
      <p className="break">
        Every field of a message (cc, HTML, attachments, idempotency keys) and every other call:{" "}
        <a href={info.apiDocsUrl}>the API reference at {info.apiDocsUrl}</a>.
      </p>
    </section>
  );
}
