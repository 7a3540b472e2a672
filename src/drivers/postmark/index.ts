import { type Driver, field } from "../types.js";
import { createPostmarkTransport } from "./transport.js";

export const postmarkDriver: Driver = {
  id: "postmark",
  label: "Postmark",
  description: "Postmark's HTTP API.",
  fields: [
    field({
      key: "serverToken",
      label: "Server API token",
      type: "text",
      required: true,
      secret: true,
      help: "From the server's API Tokens tab. Stored encrypted.",
    }),
    field({
      key: "messageStream",
      label: "Message stream",
      type: "text",
      default: "outbound",
      required: true,
      help: "The stream's ID: 'outbound' for transactional mail.",
    }),
    field({
      key: "baseUrl",
      label: "API base URL",
      type: "url",
      default: "https://api.postmarkapp.com",
      required: true,
      help: "Change only for a proxy.",
    }),
  ],
  createTransport: (ctx) => createPostmarkTransport(ctx),
};
