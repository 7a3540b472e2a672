import { checkProviderBase } from "../../transport/operator.js";
import { type Driver, field } from "../types.js";
import { postmarkErrors } from "./errors.js";
import { createPostmarkTransport, POSTMARK_API } from "./transport.js";

export const postmarkDriver: Driver = {
  id: "postmark",
  label: "Postmark",
  description: "Postmark's HTTP API.",
  errors: postmarkErrors,
  example: { serverToken: "postmark-token", messageStream: "broadcast" },
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
      default: POSTMARK_API,
      required: true,
      destination: true,
      help: "Change only for a proxy the operator lists in MAILROOM_ALLOWED_ENDPOINTS.",
    }),
  ],
  checkDestinations: (settings, operator) => {
    if (typeof settings.baseUrl !== "string") return [];
    const checked = checkProviderBase("Postmark", settings.baseUrl, [POSTMARK_API], operator);
    return "problem" in checked ? [{ field: "settings.baseUrl", message: checked.problem }] : [];
  },
  createTransport: (ctx) => createPostmarkTransport(ctx),
};
