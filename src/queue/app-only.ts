import { errorEntry } from "../kernel/errors.js";
import type { Settings } from "../kernel/settings.js";
import {
  type AccessTokenProvider,
  type CheckProbe,
  type CheckResult,
  DeliveryError,
  type OutgoingMessage,
  type SendResult,
  type TestStep,
  type Transport,
} from "../kernel/transport.js";
import type { EmailServersTable } from "../storage/schema.js";

/** The mailboxes an app-only server may send as: its from address and each other allowed one, exactly. */
export function appMailboxes(row: EmailServersTable): Set<string> {
  const settings = JSON.parse(row.settings) as Settings;
  const others = Array.isArray(settings.allowedFromAddresses) ? settings.allowedFromAddresses : [];
  // *@domain is refused when such a server is saved; it never widens the guard either.
  return new Set([row.from_address, ...others.filter((a) => !a.includes("*"))].map((a) => a.trim().toLowerCase()));
}

/**
 * The transport of a server with app-only credentials. Such credentials can send as any
 * mailbox of the tenant or domain, so a message from any other address is refused here,
 * before the provider is called (intake refuses it first; this guards every other path).
 * Its check asks for a token first, so a refused credential is named before any connection.
 */
export function appOnlyTransport(inner: Transport, row: EmailServersTable, tokens: AccessTokenProvider): Transport {
  const mailboxes = appMailboxes(row);
  return {
    async send(message: OutgoingMessage): Promise<SendResult> {
      const from = message.from.address.toLowerCase();
      if (!mailboxes.has(from)) {
        throw new DeliveryError(
          "from_not_allowed",
          "message",
          `'${row.name}' sends with application credentials only as ${[...mailboxes].join(", ")}, not ${from}; add it to "Other allowed from addresses".`,
        );
      }
      return inner.send(message);
    },
    async check(probe: CheckProbe): Promise<CheckResult> {
      const started = Date.now();
      let step: TestStep;
      try {
        await tokens.accessToken(false);
        step = { step: "token", ok: true, ms: Date.now() - started, detail: "The provider issued an app-only access token." };
      } catch (error) {
        const e =
          error instanceof DeliveryError ? error : new DeliveryError("oauth_token_unavailable", "transient", String(error));
        step = { step: "token", ok: false, ms: Date.now() - started, detail: e.message };
        probe.onStep?.(step);
        return {
          steps: [step],
          transcript: [],
          error: { code: e.code, message: e.message, hint: errorEntry(e.code).summary },
        };
      }
      probe.onStep?.(step);
      const result = await inner.check(probe);
      return { ...result, steps: [step, ...result.steps] };
    },
    close: () => inner.close(),
  };
}
