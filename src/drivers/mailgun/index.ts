import { type Driver, field } from "../types.js";
import { createMailgunTransport } from "./transport.js";

export const mailgunDriver: Driver = {
  id: "mailgun",
  label: "Mailgun",
  description: "Mailgun's HTTP API.",
  fields: [
    field({
      key: "domain",
      label: "Sending domain",
      type: "host",
      required: true,
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
      help: "Where your Mailgun account lives.",
      options: [
        { value: "us", label: "US (api.mailgun.net)" },
        { value: "eu", label: "EU (api.eu.mailgun.net)" },
      ],
    }),
    field({ key: "baseUrl", label: "API base URL", type: "url", help: "Overrides the region's address, e.g. for a proxy." }),
    field({
      key: "messageStreamTag",
      label: "Tag",
      type: "text",
      help: "Added as o:tag to every message, for Mailgun's analytics.",
    }),
  ],
  createTransport: (ctx) => createMailgunTransport(ctx),
};
