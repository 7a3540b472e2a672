import { checkProviderBase } from "../../transport/operator.js";
import { type Driver, field } from "../types.js";
import { mailgunErrors } from "./errors.js";
import { createMailgunTransport, MAILGUN_HOSTS } from "./transport.js";

export const mailgunDriver: Driver = {
  id: "mailgun",
  label: "Mailgun",
  description: "Mailgun's HTTP API.",
  errors: mailgunErrors,
  example: { domain: "mg.example.com", apiKey: "key-mailgun", region: "eu" },
  fields: [
    field({
      key: "domain",
      label: "Sending domain",
      type: "host",
      required: true,
      destination: true,
      help: "The domain as verified in Mailgun, e.g. mg.example.com.",
    }),
    field({
      key: "apiKey",
      label: "API key",
      type: "text",
      required: true,
      secret: true,
      help: "A Mailgun sending or account API key. Stored encrypted.",
    }),
    field({
      key: "region",
      label: "Region",
      type: "select",
      default: "us",
      required: true,
      destination: true,
      help: "Where your Mailgun account lives.",
      options: [
        { value: "us", label: "US (api.mailgun.net)" },
        { value: "eu", label: "EU (api.eu.mailgun.net)" },
      ],
    }),
    field({
      key: "baseUrl",
      label: "API base URL",
      type: "url",
      destination: true,
      help: "Overrides the region's address, e.g. for a proxy: only an endpoint the operator lists in MAILROOM_ALLOWED_ENDPOINTS.",
    }),
    field({
      key: "messageStreamTag",
      label: "Tag",
      type: "text",
      help: "Added as o:tag to every message, for Mailgun's analytics.",
    }),
  ],
  checkDestinations: (settings, operator) => {
    if (typeof settings.baseUrl !== "string") return [];
    const checked = checkProviderBase("Mailgun", settings.baseUrl, Object.values(MAILGUN_HOSTS), operator);
    return "problem" in checked ? [{ field: "settings.baseUrl", message: checked.problem }] : [];
  },
  createTransport: (ctx) => createMailgunTransport(ctx),
};
