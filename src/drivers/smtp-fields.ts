import { field } from "./types.js";

/** The connection fields every SMTP-based driver shares (smtp, gmail, microsoft365). */
export const securityField = field({
  key: "security",
  label: "Security",
  type: "select",
  destination: true,
  default: "starttls",
  required: true,
  help: "STARTTLS upgrades a plain connection (usually port 587); TLS encrypts from the first byte (usually port 465). Use None only on a trusted local network.",
  options: [
    { value: "starttls", label: "STARTTLS" },
    { value: "tls", label: "TLS (implicit)" },
    { value: "none", label: "None" },
  ],
});

export const portField = field({
  key: "port",
  label: "Port",
  type: "integer",
  destination: true,
  default: 587,
  required: true,
  min: 1,
  max: 65535,
  help: "587 for STARTTLS, 465 for TLS, 25 between mail servers.",
});
