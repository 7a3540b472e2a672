import { createHash, createPrivateKey, createPublicKey, X509Certificate } from "node:crypto";
import type { FieldProblem } from "../kernel/errors.js";
import type { Settings } from "../kernel/settings.js";
import { isHost } from "../kernel/validate.js";
import type { AppOnlyAuth, AppOnlyMethod, AuthMethod, Driver, DriverField } from "./types.js";
import { field } from "./types.js";

const AUTH_METHOD_LABELS: Record<AuthMethod, string> = {
  delegated: "Delegated: a person authorizes a mailbox",
  client_secret: "Application: client secret (no person in the loop)",
  certificate: "Application: certificate (no person in the loop)",
  service_account: "Application: service account with domain-wide delegation",
};

/** The server's authentication method: `authMethod` if the driver offers it, else delegated. */
export function authMethodOf(driver: Driver, settings: Settings): AuthMethod {
  const method = settings.authMethod as AppOnlyMethod;
  return driver.appOnly?.methods.includes(method) ? method : "delegated";
}

/** The app-only method of a server, or null when a person authorizes it. */
export function appOnlyMethodOf(driver: Driver, settings: Settings): AppOnlyMethod | null {
  const method = authMethodOf(driver, settings);
  return method === "delegated" ? null : method;
}

/** Fields that apply only with these methods. */
export function onlyWith(...values: AuthMethod[]): Pick<DriverField, "when"> {
  return { when: { key: "authMethod", values } };
}

/** The choice between the delegated flow and the driver's app-only methods. */
export function authMethodField(appOnly: AppOnlyAuth): DriverField {
  const methods: AuthMethod[] = ["delegated", ...appOnly.methods];
  return field({
    key: "authMethod",
    label: "Authentication",
    type: "select",
    default: "delegated",
    required: true,
    // Another method sends the credentials to another place (and drops a grant).
    destination: true,
    options: methods.map((value) => ({ value, label: AUTH_METHOD_LABELS[value] })),
    help: `Delegated: an administrator signs in once with 'Authorize account'. Application: Mailroom gets its own tokens (scope ${appOnly.scope}) and sends only as the from address and the other allowed from addresses, each listed exactly.`,
  });
}

/** The public certificate of a key pair, PEM; null with the problem otherwise. */
function certificateOf(pem: string): X509Certificate | null {
  try {
    return new X509Certificate(pem);
  } catch {
    return null;
  }
}

/** Entra's thumbprint of a certificate: SHA-1 of its DER form, in hex. */
export function thumbprintOf(pem: string): string | null {
  const cert = certificateOf(pem);
  return cert ? createHash("sha1").update(cert.raw).digest("hex").toUpperCase() : null;
}

/** Microsoft's certificate credential: the public certificate (shown, with its thumbprint) and its private key (secret). */
export function certificateFields(where: string): DriverField[] {
  const only = onlyWith("certificate");
  return [
    field({
      key: "certificate",
      label: "Certificate (PEM)",
      type: "text",
      multiline: true,
      required: true,
      destination: true,
      ...only,
      placeholder: "-----BEGIN CERTIFICATE-----",
      help: `The public certificate you uploaded to ${where} (Certificates & secrets → Certificates), as PEM.`,
      check: (value) => (certificateOf(value) ? null : "must be a PEM certificate (-----BEGIN CERTIFICATE-----)"),
    }),
    field({
      key: "privateKey",
      label: "Private key (PEM)",
      type: "text",
      multiline: true,
      required: true,
      secret: true,
      ...only,
      placeholder: "-----BEGIN PRIVATE KEY-----",
      help: "The certificate's RSA private key, as PEM (unencrypted PKCS#8 or PKCS#1). Stored encrypted; never shown again. It signs Mailroom's client assertions and never leaves Mailroom.",
      check: (value) => {
        try {
          const key = createPrivateKey(value);
          return key.asymmetricKeyType === "rsa"
            ? null
            : "must be an RSA private key (Entra signs certificate credentials with RS256)";
        } catch {
          return "must be an unencrypted PEM private key (-----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)";
        }
      },
    }),
    field({
      key: "certificateThumbprint",
      label: "Certificate thumbprint",
      type: "text",
      readOnly: true,
      ...only,
      help: `Computed from the certificate: it must match the thumbprint ${where} shows for it.`,
    }),
  ];
}

/** Whether a private key belongs to a certificate (their public keys are the same). */
export function keyMatchesCertificate(privateKeyPem: string, certificatePem: string): boolean {
  const cert = certificateOf(certificatePem);
  if (!cert) return false;
  const spki = (key: ReturnType<typeof createPublicKey>) => key.export({ type: "spki", format: "der" });
  return spki(createPublicKey(createPrivateKey(privateKeyPem))).equals(spki(cert.publicKey));
}

/** The fields of a Google service account key that Mailroom uses. */
export interface ServiceAccountKey {
  client_email: string;
  client_id?: string;
  private_key: string;
  private_key_id?: string;
}

/** Parses a service account's JSON key; a string is the problem. */
export function parseServiceAccountKey(text: string): ServiceAccountKey | string {
  let key: Record<string, unknown>;
  try {
    key = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return "must be the service account's JSON key file as downloaded (IAM → Service accounts → Keys → Add key → JSON)";
  }
  if (typeof key !== "object" || key === null || key.type !== "service_account") {
    return 'must be a service account key: its "type" is "service_account"';
  }
  if (typeof key.client_email !== "string" || !/^[^\s@]+@[^\s@]+$/.test(key.client_email)) {
    return 'has no "client_email": download the key again';
  }
  if (typeof key.private_key !== "string") return 'has no "private_key": download the key again';
  try {
    if (createPrivateKey(key.private_key).asymmetricKeyType !== "rsa") return '"private_key" must be an RSA key';
  } catch {
    return '"private_key" is not a PEM private key: download the key again';
  }
  return {
    client_email: key.client_email,
    private_key: key.private_key,
    ...(typeof key.client_id === "string" ? { client_id: key.client_id } : {}),
    ...(typeof key.private_key_id === "string" ? { private_key_id: key.private_key_id } : {}),
  };
}

/** Google's service account credential: its JSON key (secret), checked when saved. */
export const serviceAccountKeyField: DriverField = field({
  key: "serviceAccountKey",
  label: "Service account key (JSON)",
  type: "text",
  multiline: true,
  required: true,
  secret: true,
  ...onlyWith("service_account"),
  placeholder: '{"type": "service_account", …}',
  help: "The JSON key of a Google Cloud service account whose client ID has domain-wide delegation in the Admin console. Stored encrypted; never shown again.",
  check: (value) => {
    const key = parseServiceAccountKey(value);
    return typeof key === "string" ? key : null;
  },
});

/** The grant facts an OAuth driver shows; Mailroom records them when an account is authorized. */
export const grantFields: DriverField[] = [
  field({
    key: "authorizedAccount",
    label: "Authorized account",
    type: "email",
    readOnly: true,
    ...onlyWith("delegated"),
    help: "The mailbox that granted access.",
  }),
  field({
    key: "grantedScopes",
    label: "Granted scopes",
    type: "text",
    readOnly: true,
    ...onlyWith("delegated"),
    help: "What the provider allowed Mailroom to do.",
  }),
  field({
    key: "authorizedAt",
    label: "Authorized at",
    type: "text",
    readOnly: true,
    ...onlyWith("delegated"),
    help: "When the account was last authorized.",
  }),
];

/**
 * The OAuth client: its ID, secret and redirect URI. `clientIdWith` and `secretWith`: the
 * authentication methods that use them (the delegated flow always does).
 */
export function oauthClientFields(
  provider: string,
  { clientIdWith = [], secretWith = [] }: { clientIdWith?: AppOnlyMethod[]; secretWith?: AppOnlyMethod[] } = {},
): DriverField[] {
  return [
    field({
      key: "clientId",
      label: "Client ID",
      type: "text",
      required: true,
      destination: true,
      ...onlyWith("delegated", ...clientIdWith),
      help: `The OAuth client ID from ${provider}.`,
    }),
    field({
      key: "clientSecret",
      label: "Client secret",
      type: "text",
      required: true,
      secret: true,
      ...onlyWith("delegated", ...secretWith),
      help: `The OAuth client secret from ${provider}. Stored encrypted; never shown again.`,
    }),
    field({
      key: "credentialExpiresOn",
      label: "Client secret end date",
      type: "text",
      ...onlyWith("delegated", ...secretWith),
      placeholder: "YYYY-MM-DD",
      help: 'The date the client secret stops working (its "Expires" date where it was created). Optional: with it, alerts warn before then (30 and 7 days before, by default), so a new secret is in place in time.',
      check: (value) => (isCalendarDate(value) ? null : "must be a date as YYYY-MM-DD, e.g. 2027-03-31"),
    }),
    field({
      key: "redirectUri",
      label: "Redirect URI",
      type: "url",
      readOnly: true,
      ...onlyWith("delegated"),
      help: `Register this exact address as an authorized redirect URI in ${provider}.`,
    }),
  ];
}

/** A real calendar date written YYYY-MM-DD (2027-02-30 is not one). */
export function isCalendarDate(value: string): boolean {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(value)) return false;
  const date = new Date(`${value}T00:00:00Z`);
  return !Number.isNaN(date.getTime()) && date.toISOString().slice(0, 10) === value;
}

/**
 * Google apps whose OAuth consent screen is in "Testing" get refresh tokens that end 7 days
 * after consent (Google says so nowhere in the token reply): the admin tells Mailroom here,
 * and alerts warn before the week is out.
 */
export const publishingStatusField: DriverField = field({
  key: "publishingStatus",
  label: "Google app publishing status",
  type: "select",
  default: "production",
  required: true,
  options: [
    { value: "production", label: "In production" },
    { value: "testing", label: "Testing (authorizations end after 7 days)" },
  ],
  ...onlyWith("delegated"),
  help: 'As Google Cloud shows it (APIs & Services → OAuth consent screen → Publishing status). An app in "Testing" loses its authorization 7 days after it is given: alerts warn before then; publish the app to stop it.',
});

/** A Microsoft directory: part of the token endpoint's path, so a name or an ID, never a path. */
export const tenantField: DriverField = field({
  key: "tenant",
  label: "Tenant",
  type: "text",
  default: "organizations",
  required: true,
  destination: true,
  help: "Your directory (tenant) ID or domain, or 'organizations' for any work account (delegated only: application credentials need your own tenant).",
});

/** Tenant names that mean "any directory": client credentials need one directory. */
const SHARED_TENANTS = ["organizations", "common", "consumers"];

/** With application credentials the tenant must be one directory, not a shared name. */
export function checkAppOnlyTenant(driver: Driver, settings: Settings): FieldProblem[] {
  return appOnlyMethodOf(driver, settings) && SHARED_TENANTS.includes(String(settings.tenant ?? "").toLowerCase())
    ? [{ field: "settings.tenant", message: "must be your directory (tenant) ID or domain with application credentials" }]
    : [];
}

/** A certificate server shows its certificate's thumbprint, computed, never entered. */
export function derivedThumbprint(settings: Settings | undefined): { certificateThumbprint?: string } {
  const thumbprint = typeof settings?.certificate === "string" ? thumbprintOf(settings.certificate) : null;
  return thumbprint ? { certificateThumbprint: thumbprint } : {};
}

export function checkTenant(settings: Settings): FieldProblem[] {
  const tenant = String(settings.tenant ?? "");
  return tenant === "" || (isHost(tenant) && !tenant.includes(":"))
    ? []
    : [{ field: "settings.tenant", message: "must be a tenant ID, a domain such as contoso.onmicrosoft.com, or organizations" }];
}
