import { checkProviderBase } from "../../transport/operator.js";
import { type Driver, field } from "../types.js";
import { createResendTransport, RESEND_API } from "./transport.js";

export const resendDriver: Driver = {
  id: "resend",
  label: "Resend",
  description: "Resend's HTTP API.",
  example: { apiKey: "re_example_0123456789" },
  fields: [
    field({
      key: "apiKey",
      label: "API key",
      type: "text",
      required: true,
      secret: true,
      help: "A Resend API key (re_…), full or sending access. Stored encrypted.",
    }),
    field({
      key: "baseUrl",
      label: "API base URL",
      type: "url",
      default: RESEND_API,
      required: true,
      destination: true,
      help: "Change only for a proxy the operator lists in MAILROOM_ALLOWED_ENDPOINTS.",
    }),
  ],
  checkDestinations: (settings, operator) => {
    if (typeof settings.baseUrl !== "string") return [];
    const checked = checkProviderBase("Resend", settings.baseUrl, [RESEND_API], operator);
    return "problem" in checked ? [{ field: "settings.baseUrl", message: checked.problem }] : [];
  },
  createTransport: (ctx) => createResendTransport(ctx),
};
