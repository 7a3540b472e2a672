/**
 * Hands each message to a local sendmail-compatible program (Postfix, Exim, msmtp…) through
 * nodemailer's sendmail transport: `<program> -i <arguments> -f <from> <recipients>`, the
 * message on stdin. Program and arguments are a command the operator declared
 * (MAILROOM_SENDMAIL_COMMANDS); a server's settings only name it. An address starting with
 * "-" would be read as an option, so it is refused before anything runs.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { constants, promises as fs } from "node:fs";
import path from "node:path";
import { createTransport } from "nodemailer";
import SendmailTransport from "nodemailer/lib/sendmail-transport";
import { STRICT_OPERATOR } from "../../kernel/operator-policy.js";
import {
  type CheckResult,
  DeliveryError,
  type FailureKind,
  type OutgoingMessage,
  type SendResult,
  type Transport,
  type TransportContext,
} from "../../kernel/transport.js";
import { CheckSteps, HttpTranscript } from "../../transport/http.js";
import { envelopeRecipients, toNodemailerMail } from "../../transport/mime.js";
import { sendmailCode } from "./errors.js";

/** The most of the program's error output kept in a failure. */
const MAX_OUTPUT = 1000;

/** The program and arguments of the command the server names, as the operator declared it. */
export function sendmailCommand(ctx: TransportContext): { name: string; program: string; args: string[] } {
  const name = typeof ctx.settings.command === "string" ? ctx.settings.command : "";
  const declared = (ctx.operator ?? STRICT_OPERATOR).sendmailCommands;
  const command = Object.hasOwn(declared, name) ? declared[name] : undefined;
  if (!command) {
    const names = Object.keys(declared);
    throw new DeliveryError(
      sendmailCode.sendmail_command_unknown,
      "server",
      `The sendmail command '${name}' is not declared in MAILROOM_SENDMAIL_COMMANDS: ${
        names.length ? `pick one of ${names.join(", ")} in the server's settings` : "the operator declares none"
      }.`,
    );
  }
  // nodemailer always passes -i first; a declared -i would only repeat it.
  return { name, program: command.program, args: command.args.filter((a) => a !== "-i") };
}

/** sendmail reads an argument starting with "-" (also inside quotes) as an option. */
function looksLikeOption(address: string): boolean {
  return /^"?-/.test(address.trim());
}

/** Why the program is unusable, or undefined if it is an executable file. */
export async function sendmailProblem(program: string): Promise<string | undefined> {
  if (!path.isAbsolute(program)) return `${program} is not an absolute path`;
  try {
    const stat = await fs.stat(program);
    if (!stat.isFile()) return `${program} is not a file`;
    await fs.access(program, constants.X_OK);
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return `${program} does not exist`;
    if (code === "EACCES") return `${program} is not executable by Mailroom's user`;
    return `${program} cannot be used (${code ?? (err as Error).message})`;
  }
}

/** What a sendmail exit status (sysexits.h) means for the message. */
function exitKind(status: number): FailureKind {
  switch (status) {
    case 65: // EX_DATAERR: bad input, e.g. an address
    case 67: // EX_NOUSER
      return "recipient";
    case 68: // EX_NOHOST
    case 69: // EX_UNAVAILABLE
    case 71: // EX_OSERR
    case 74: // EX_IOERR
    case 75: // EX_TEMPFAIL
    case 76: // EX_PROTOCOL
      return "transient";
    default: // EX_USAGE, EX_NOPERM, EX_CONFIG and anything else: the setup is wrong
      return "server";
  }
}

function lastLines(output: string): string {
  const trimmed = output.trim();
  return trimmed.length > MAX_OUTPUT ? `…${trimmed.slice(-MAX_OUTPUT)}` : trimmed;
}

export function createSendmailTransport(ctx: TransportContext): Transport {
  const command = sendmailCommand(ctx);

  function refuseOptionLikeAddresses(message: OutgoingMessage): void {
    if (looksLikeOption(message.from.address)) {
      throw new DeliveryError(
        "sender_rejected",
        "message",
        `The from address ${message.from.address} starts with "-", which sendmail would read as an option.`,
      );
    }
    const bad = envelopeRecipients(message).find(looksLikeOption);
    if (bad) {
      throw new DeliveryError(
        "recipient_rejected",
        "recipient",
        `The recipient ${bad} starts with "-", which sendmail would read as an option.`,
      );
    }
  }

  return {
    async send(message): Promise<SendResult> {
      refuseOptionLikeAddresses(message);
      const problem = await sendmailProblem(command.program);
      if (problem) throw new DeliveryError(sendmailCode.sendmail_not_found, "server", `${problem}.`);

      // nodemailer runs `<path> -i <args> <recipients>`; with args of our own it adds no -f, so
      // it goes here, always, after the configured arguments.
      const transport = new SendmailTransport({ path: command.program, args: [...command.args, "-f", message.from.address] });
      let stderr = "";
      // nodemailer keeps spawn as a replaceable member (for its own tests); wrapping it is the
      // only way to read the program's error output, which says why it failed.
      const hooks = transport as unknown as { _spawn: (file: string, args: string[]) => ChildProcess };
      hooks._spawn = (file, args) => {
        const child = spawn(file, args);
        child.stderr?.setEncoding("utf8");
        child.stderr?.on("data", (chunk: string) => {
          if (stderr.length < MAX_OUTPUT * 4) stderr += chunk;
        });
        child.stdout?.resume();
        return child;
      };
      const mailer = createTransport(transport);
      try {
        const info = await mailer.sendMail(toNodemailerMail(message));
        return { response: `${path.basename(command.program)}: ${info.response}` };
      } catch (err) {
        const e = err as NodeJS.ErrnoException & { message: string };
        if (e.code === "ENOENT" || e.code === "EACCES") {
          throw new DeliveryError(sendmailCode.sendmail_not_found, "server", `${command.program} could not be run (${e.code}).`);
        }
        const status = Number(/exited with code (\d+)/.exec(e.message)?.[1]);
        if (status === 127)
          throw new DeliveryError(sendmailCode.sendmail_not_found, "server", `${command.program} was not found (exit 127).`);
        const output = lastLines(stderr);
        throw new DeliveryError(
          sendmailCode.sendmail_failed,
          Number.isFinite(status) ? exitKind(status) : "transient",
          `${path.basename(command.program)} failed: ${e.message}${output ? `: ${output}` : ""}`,
          { response: output || e.message },
        );
      }
    },

    async check(probe): Promise<CheckResult> {
      const checks = new CheckSteps(new HttpTranscript([]), probe.onStep);
      await checks.run("program", async () => {
        const problem = await sendmailProblem(command.program);
        if (problem) throw new DeliveryError(sendmailCode.sendmail_not_found, "server", `${problem}.`);
        return `${command.program} exists and is executable`;
      });
      await checks.run("arguments", async () => {
        if (looksLikeOption(probe.from)) {
          throw new DeliveryError("sender_rejected", "server", `The from address ${probe.from} starts with "-".`);
        }
        const line = [command.program, "-i", ...command.args, "-f", probe.from, probe.to].join(" ");
        checks.transcript.note(`$ ${line}`);
        return `Messages will be handed over as: ${line} (nothing was run)`;
      });
      return checks.result();
    },

    async close(): Promise<void> {},
  };
}
