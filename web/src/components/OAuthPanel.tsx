/**
 * Gmail / Microsoft 365: register the redirect URI, paste the client ID and secret,
 * authorize the account at the provider, then see (and end) the grant.
 */
import { type ReactNode, useState } from "react";
import {
  type AuthorizationStart,
  api,
  type Disconnected,
  type Driver,
  type DriverField,
  type EmailServer,
  errorMessage,
} from "../api";
import { confirmDialog } from "./Confirm";
import { Alert, CopyButton, formatTime } from "./ui";

interface ProviderGuide {
  label: string;
  console: string;
  /** Where the client (and its redirect URI) is made. */
  clientsUrl: string;
  clientsLink: string;
  /** Where who may authorize is decided (consent screen, audience). */
  consentUrl: string;
  consentLink: string;
  /** The part of docs/oauth.md for this provider. */
  guide: string;
}

const PROVIDER: Record<string, ProviderGuide> = {
  google: {
    label: "Google",
    console: "Google Cloud console (Google Auth Platform → Clients → Create client, type “Web application”)",
    clientsUrl: "https://console.cloud.google.com/auth/clients",
    clientsLink: "Google Cloud console: OAuth clients",
    consentUrl: "https://console.cloud.google.com/auth/audience",
    consentLink: "Google Auth Platform: Audience",
    guide: "“Google: create the OAuth client”",
  },
  microsoft: {
    label: "Microsoft",
    console: "Microsoft Entra admin center (App registrations → the app → Authentication → Web platform)",
    clientsUrl: "https://entra.microsoft.com/#view/Microsoft_AAD_RegisteredApps/ApplicationsListBlade",
    clientsLink: "Microsoft Entra admin center: App registrations",
    consentUrl: "https://entra.microsoft.com/#view/Microsoft_AAD_RegisteredApps/ApplicationsListBlade",
    consentLink: "Microsoft Entra admin center: the app’s API permissions",
    guide: "“Microsoft 365: register the Entra app”",
  },
};

const DAY = 86_400_000;

/** Both providers take a plain-http redirect URI only for localhost. */
function needsHttps(uri: string | null): boolean {
  if (!uri) return false;
  try {
    const url = new URL(uri);
    return url.protocol === "http:" && !["localhost", "127.0.0.1", "[::1]"].includes(url.hostname);
  } catch {
    return false;
  }
}

/** A grant that ends about a week after it was given: Google's limit for External apps in Testing. */
function looksLikeTestingGrant(authorizedAt: string | null, expiresAt: string | null | undefined): boolean {
  if (!authorizedAt || !expiresAt) return false;
  const days = (Date.parse(expiresAt) - Date.parse(authorizedAt)) / DAY;
  return days > 6 && days < 8;
}

function ExternalLink({ href, children }: { href: string; children: ReactNode }) {
  return (
    <a href={href} target="_blank" rel="noreferrer">
      {children}
      <span className="visually-hidden"> (opens in a new tab)</span>
    </a>
  );
}

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
  const provider = PROVIDER[driver.oauthProvider ?? "google"] ?? PROVIDER.google;
  const google = driver.oauthProvider === "google";
  // SMTP drivers have a host; the HTTP API drivers send to the operator's API address instead.
  const smtp = driver.fields.some((f) => f.key === "host");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const field = (key: string) => driver.fields.find((f) => f.key === key);
  // The same for every server of the driver: known before the first save.
  const redirectUri =
    typeof saved?.settings.redirectUri === "string" ? saved.settings.redirectUri : (driver.derived?.redirectUri ?? null);
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
      const { authorizationUrl } = await api<AuthorizationStart>(
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
      const result = await api<Disconnected>("DELETE", `/api/email-servers/${encodeURIComponent(saved.id)}/oauth`);
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
      <p className="muted">
        The whole setup, step by step: <code>docs/oauth.md</code>, section {provider.guide}, in Mailroom’s documentation.
      </p>
      <ol className="oauth-steps">
        <li>
          <h3>{google ? "Set up the consent screen" : "Register the app"}</h3>
          {google ? (
            <>
              <p className="muted">
                In <ExternalLink href={provider.consentUrl}>{provider.consentLink}</ExternalLink>, choose who may authorize:
              </p>
              <ul className="muted guide">
                <li>
                  <strong>Internal</strong> (Google Workspace): only your organisation’s accounts; grants last until revoked.
                  Choose it when the mailbox is in your Workspace.
                </li>
                <li>
                  <strong>External</strong> (needed for @gmail.com): while the app is in <strong>Testing</strong>, only the test
                  users listed there can authorize, and Google ends every grant after <strong>7 days</strong>. Click{" "}
                  <strong>Publish app</strong> to keep it working.
                </li>
                <li>
                  Under Data Access, add the scope <code>{driver.oauthScope}</code>
                  {smtp
                    ? ": Gmail’s SMTP accepts no other."
                    : ", and enable the Gmail API in the same project (APIs & Services → Library)."}
                </li>
              </ul>
            </>
          ) : (
            <p className="muted">
              In <ExternalLink href={provider.clientsUrl}>{provider.clientsLink}</ExternalLink>, register an app for accounts of
              your organisation and add the delegated permission <code>{driver.oauthScope}</code>
              {smtp
                ? " (Office 365 Exchange Online), and allow Authenticated SMTP for the mailbox."
                : " (Microsoft Graph); SMTP AUTH may stay off."}
            </p>
          )}
        </li>
        <li>
          <h3>Register the redirect URI</h3>
          <p className="muted">
            In the {provider.console} (<ExternalLink href={provider.clientsUrl}>{provider.clientsLink}</ExternalLink>), add this
            exact address as an authorized redirect URI.
          </p>
          {redirectUri ? (
            <div className="copy-line">
              <code id="redirect-uri">{redirectUri}</code>
              <CopyButton text={redirectUri} label="Copy the redirect URI" />
            </div>
          ) : (
            <p className="muted">Save the server to see its redirect URI.</p>
          )}
          {needsHttps(redirectUri) && (
            <Alert kind="warning">
              {provider.label} accepts a plain <code>http://</code> redirect URI only for localhost. Serve Mailroom over https and
              set <code>MAILROOM_PUBLIC_URL</code> to its https address, then register that redirect URI.
            </Alert>
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
            {google && looksLikeTestingGrant(authorizedAt, saved?.oauthExpiresAt) && (
              <Alert kind="warning">
                This grant ends 7 days after it was given: Google does that for an External app left in “Testing”. In{" "}
                <ExternalLink href={provider.consentUrl}>{provider.consentLink}</ExternalLink>, click Publish app (or make it
                Internal), then authorize again.
              </Alert>
            )}
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
