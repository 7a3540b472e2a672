import type { FieldProblem } from "../kernel/errors.js";
import type { Settings } from "../kernel/settings.js";
import { isHost } from "../kernel/validate.js";
import { type DriverField, field } from "./types.js";

/** The grant facts an OAuth driver shows; Mailroom records them when an account is authorized. */
export const grantFields: DriverField[] = [
  field({
    key: "authorizedAccount",
    label: "Authorized account",
    type: "email",
    readOnly: true,
    help: "The mailbox that granted access.",
  }),
  field({
    key: "grantedScopes",
    label: "Granted scopes",
    type: "text",
    readOnly: true,
    help: "What the provider allowed Mailroom to do.",
  }),
  field({
    key: "authorizedAt",
    label: "Authorized at",
    type: "text",
    readOnly: true,
    help: "When the account was last authorized.",
  }),
];

export function oauthClientFields(provider: string): DriverField[] {
  return [
    field({
      key: "clientId",
      label: "Client ID",
      type: "text",
      required: true,
      destination: true,
      help: `The OAuth client ID from ${provider}.`,
    }),
    field({
      key: "clientSecret",
      label: "Client secret",
      type: "text",
      required: true,
      secret: true,
      help: `The OAuth client secret from ${provider}. Stored encrypted; never shown again.`,
    }),
    field({
      key: "redirectUri",
      label: "Redirect URI",
      type: "url",
      readOnly: true,
      help: `Register this exact address as an authorized redirect URI in ${provider}.`,
    }),
  ];
}

/** A Microsoft directory: part of the token endpoint's path, so a name or an ID, never a path. */
export const tenantField: DriverField = field({
  key: "tenant",
  label: "Tenant",
  type: "text",
  default: "organizations",
  required: true,
  destination: true,
  help: "Your directory (tenant) ID or domain, or 'organizations' for any work account.",
});

export function checkTenant(settings: Settings): FieldProblem[] {
  const tenant = String(settings.tenant ?? "");
  return tenant === "" || (isHost(tenant) && !tenant.includes(":"))
    ? []
    : [{ field: "settings.tenant", message: "must be a tenant ID, a domain such as contoso.onmicrosoft.com, or organizations" }];
}
