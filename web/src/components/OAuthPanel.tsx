/**
 * Gmail / Microsoft 365: register the redirect URI, paste the client ID and secret,
 * authorize the account at the provider, then see (and end) the grant.
 */
import { type ReactNode, useState } from "react";
import { api, type Driver, type DriverField, type EmailServer, errorMessage } from "../api";
import { confirmDialog } from "./Confirm";
import { Alert, CopyButton, formatTime } from "./ui";

const PROVIDER: Record<string, { label: string; console: string }> = {
  google: {
    label: "Google",
    console: "Google Cloud console (APIs & Services → Credentials → OAuth client ID, type “Web application”)",
  },
  microsoft: { label: "Microsoft", console: "Microsoft Entra admin center (App registrations → Authentication → Web platform)" },
};

export function OAuthPanel({
  driver,
  saved,
  fromAddress,
  canEdit,
  dirty,
  clientReady,
  renderField,
  saveFirst,
  onChanged,
}: {
  driver: Driver;
  /** The saved server, if saved with this driver. */
  saved: EmailServer | null;
  fromAddress: string;
  canEdit: boolean;
  dirty: boolean;
  /** Client ID and secret are filled in (saved or about to be). */
  clientReady: boolean;
  renderField: (field: DriverField) => ReactNode;
  /** Saves the form; resolves to the saved server's id, or null if the save failed. */
  saveFirst: () => Promise<string | null>;
  onChanged: () => Promise<void>;
}) {
  const provider = PROVIDER[driver.oauthProvider ?? ""] ?? { label: driver.label, console: "the provider's console" };
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const field = (key: string) => driver.fields.find((f) => f.key === key);
  const redirectUri = typeof saved?.settings.redirectUri === "string" ? saved.settings.redirectUri : null;
  const account = typeof saved?.settings.authorizedAccount === "string" ? saved.settings.authorizedAccount : null;
  const scopes = typeof saved?.settings.grantedScopes === "string" ? saved.settings.grantedScopes : null;
  const authorizedAt = typeof saved?.settings.authorizedAt === "string" ? saved.settings.authorizedAt : null;
  const fromMismatch = account && fromAddress && account.toLowerCase() !== fromAddress.trim().toLowerCase();

  const authorize = async () => {
    setError(null);
    setBusy(true);
    try {
      const id = dirty || !saved ? await saveFirst() : saved.id;
      if (!id) return;
      const { authorizationUrl } = await api<{ authorizationUrl: string }>(
        "POST",
        `/api/email-servers/${encodeURIComponent(id)}/oauth/authorize`,
      );
      window.location.assign(authorizationUrl);
    } catch (e) {
      setError(errorMessage(e));
    } finally {
      setBusy(false);
    }
  };

  const disconnect = async () => {
    if (!saved) return;
    const ok = await confirmDialog({
      title: `Disconnect ${account ?? "the account"}?`,
      message: `Mailroom revokes its access at ${provider.label} and forgets the tokens. “${saved.name}” cannot send until an account is authorized again.`,
      confirmLabel: "Disconnect",
      danger: true,
    });
    if (!ok) return;
    setBusy(true);
    setError(null);
    try {
      const result = await api<{ revoked: boolean; notice: string | null }>(
        "DELETE",
        `/api/email-servers/${encodeURIComponent(saved.id)}/oauth`,
      );
      setNotice(result.notice ?? `Disconnected: ${provider.label} revoked Mailroom’s access.`);
      await onChanged();
    } catch (e) {
      setError(errorMessage(e));
    } finally {
      setBusy(false);
    }
  };

  const tenantField = field("tenant");
  const idField = field("clientId");
  const secretField = field("clientSecret");
  const authorizeLabel = dirty || !saved ? "Save and authorize account" : account ? "Authorize again" : "Authorize account";

  return (
    <section className="panel oauth" aria-labelledby="oauth-heading">
      <h2 id="oauth-heading">Connect {driver.label}</h2>
      {error && <Alert kind="error">{error}</Alert>}
      {notice && (
        <Alert kind="info" onDismiss={() => setNotice(null)}>
          {notice}
        </Alert>
      )}
      <ol className="oauth-steps">
        <li>
          <h3>Register the redirect URI</h3>
          <p className="muted">In the {provider.console}, add this exact address as an authorized redirect URI.</p>
          {redirectUri ? (
            <div className="copy-line">
              <code id="redirect-uri">{redirectUri}</code>
              <CopyButton text={redirectUri} label="Copy the redirect URI" />
            </div>
          ) : (
            <p className="muted">Save the server to see its redirect URI.</p>
          )}
        </li>
        <li>
          <h3>Paste the {tenantField ? "tenant, client ID" : "client ID"} and secret</h3>
          {tenantField && renderField(tenantField)}
          {idField && renderField(idField)}
          {secretField && renderField(secretField)}
        </li>
        <li>
          <h3>Authorize the account</h3>
          <p className="muted">
            Opens {provider.label}’s sign-in page: sign in as the mailbox Mailroom should send as and allow every permission. You
            come back here afterwards.
          </p>
          {canEdit && (
            <p>
              <button
                type="button"
                className="button primary"
                onClick={() => void authorize()}
                disabled={busy || !clientReady}
                aria-describedby={!clientReady ? "authorize-why" : undefined}
              >
                {busy ? "Working…" : authorizeLabel}
              </button>
              {!clientReady && (
                <span id="authorize-why" className="reason">
                  {" "}
                  Enter the client ID and client secret first.
                </span>
              )}
            </p>
          )}
        </li>
      </ol>
      <div className="grant" aria-live="polite">
        <h3>Authorized account</h3>
        {account ? (
          <>
            <dl className="facts">
              <dt>Account</dt>
              <dd className="account-name">{account}</dd>
              <dt>Scopes</dt>
              <dd className="break">{scopes ?? "—"}</dd>
              <dt>Authorized</dt>
              <dd>{formatTime(authorizedAt)}</dd>
              <dt>Expires</dt>
              <dd>
                {saved?.oauthExpiresAt
                  ? formatTime(saved.oauthExpiresAt)
                  : "Not set by the provider: it lasts until revoked (access tokens are renewed automatically)."}
              </dd>
            </dl>
            {fromMismatch && (
              <Alert kind="warning">
                The from address {fromAddress} is not the authorized account {account}. {provider.label} sends as it only if it is
                one of that account’s {driver.oauthProvider === "microsoft" ? "“Send As” addresses" : "“Send mail as” aliases"}.
                Otherwise set the from address to {account}.
              </Alert>
            )}
            {canEdit && (
              <button type="button" className="button danger-outline" onClick={() => void disconnect()} disabled={busy}>
                Disconnect
              </button>
            )}
          </>
        ) : (
          <p className="muted">No account is authorized yet: this server cannot send.</p>
        )}
      </div>
    </section>
  );
}
