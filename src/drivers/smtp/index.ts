import { createSmtpTransport } from "../../transport/smtp.js";
import { type Driver, field } from "../types.js";

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

export const smtpDriver: Driver = {
  id: "smtp",
  label: "SMTP",
  description: "Any SMTP server, with a username and password.",
  fields: [
    field({
      key: "host",
      label: "Host",
      type: "host",
      required: true,
      destination: true,
      help: "The SMTP server's name, e.g. smtp.example.com.",
    }),
    portField,
    securityField,
    field({
      key: "username",
      label: "Username",
      type: "text",
      destination: true,
      help: "Leave empty for a server that needs no login.",
    }),
    field({ key: "password", label: "Password", type: "text", secret: true, help: "Stored encrypted; never shown again." }),
    field({
      key: "verifyCertificate",
      label: "Verify certificate",
      type: "boolean",
      // Without verification, whoever answers for the host receives the password.
      destination: true,
      default: true,
      required: true,
      help: "Turn off only for a server with a self-signed certificate you trust.",
    }),
    field({
      key: "timeoutSeconds",
      label: "Timeout (seconds)",
      type: "integer",
      default: 30,
      required: true,
      min: 1,
      max: 600,
      help: "How long to wait for the server at each step.",
    }),
  ],
  createTransport: (ctx) => createSmtpTransport(ctx),
};
