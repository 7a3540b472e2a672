import { createSmtpTransport } from "../../transport/smtp.js";
import { portField, securityField } from "../smtp-fields.js";
import { type Driver, field } from "../types.js";

export const smtpDriver: Driver = {
  id: "smtp",
  label: "SMTP",
  description: "Any SMTP server, with a username and password.",
  example: { host: "smtp.example.com", port: 2525, security: "starttls", username: "relay-user", password: "smtp-pass" },
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
