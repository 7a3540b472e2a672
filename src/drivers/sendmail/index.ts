import { type Driver, field } from "../types.js";
import { createSendmailTransport } from "./transport.js";

export const sendmailDriver: Driver = {
  id: "sendmail",
  label: "Sendmail",
  description: "Hands each message to the local sendmail program (Postfix, Exim, msmtp…).",
  fields: [
    field({
      key: "path",
      label: "Program",
      type: "text",
      default: "/usr/sbin/sendmail",
      required: true,
      help: "Absolute path to a sendmail-compatible program.",
    }),
    field({
      key: "arguments",
      label: "Arguments",
      type: "text",
      default: "-i",
      help: "Extra arguments, separated by spaces. Mailroom always adds -f <from address>.",
    }),
  ],
  createTransport: (ctx) => createSendmailTransport(ctx),
};
