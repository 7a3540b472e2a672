import { type Driver, field } from "../types.js";
import { sendmailErrors } from "./errors.js";
import { createSendmailTransport } from "./transport.js";

const COMMAND_HELP =
  "One of the commands the operator declared in MAILROOM_SENDMAIL_COMMANDS. Mailroom adds -f <from address> and the recipients.";

export const sendmailDriver: Driver = {
  id: "sendmail",
  label: "Sendmail",
  description: "Hands each message to a local sendmail program (Postfix, Exim, msmtp…) the operator declared.",
  errors: sendmailErrors,
  example: { command: "sendmail" },
  fields: [
    field({
      key: "command",
      label: "Command",
      type: "select",
      required: true,
      options: [],
      help: COMMAND_HELP,
    }),
  ],
  // Which programs may run is the operator's decision: settings only pick one by name.
  operatorFields: (operator) => {
    const entries = Object.entries(operator.sendmailCommands);
    return {
      command: {
        options: entries.map(([name, c]) => ({ value: name, label: `${name} (${[c.program, ...c.args].join(" ")})` })),
        default: entries[0]?.[0] ?? null,
        help: entries.length
          ? COMMAND_HELP
          : "No command is declared: the operator sets MAILROOM_SENDMAIL_COMMANDS (JSON, name → [program, arguments…]) for this driver to send.",
      },
    };
  },
  createTransport: (ctx) => createSendmailTransport(ctx),
};
