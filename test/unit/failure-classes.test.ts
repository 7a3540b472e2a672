/**
 * One failure policy: the same network event is the same class whichever driver met it.
 * The errors are built the way each stack reports them (nodemailer's EDNS with the
 * resolver's code kept as originalCode; fetch's TypeError with the system error as its
 * cause; the AWS SDK passing Node's error through), because a real DNS failure would need a
 * resolver beyond loopback.
 */
import { describe, expect, it } from "vitest";
import { sesError } from "../../src/drivers/ses/transport.js";
import type { DeliveryError } from "../../src/kernel/transport.js";
import { networkFailure } from "../../src/transport/failure.js";
import { networkError } from "../../src/transport/http.js";
import { toSmtpDeliveryError } from "../../src/transport/smtp-errors.js";
import { Redactor } from "../../src/transport/transcript.js";

const systemError = (code: string, message = `${code} (drill)`) => Object.assign(new Error(message), { code });

/** How each driver family sees a failure below the protocol with this system code. */
const drivers: Record<string, (code: string) => DeliveryError> = {
  smtp: (code) => {
    // nodemailer relabels: EDNS for a lookup, ECONNECTION for a connect, keeping the system code.
    const label = ["ENOTFOUND", "EAI_AGAIN", "ENODATA"].includes(code) ? "EDNS" : "ECONNECTION";
    return toSmtpDeliveryError(Object.assign(new Error(`${code} (drill)`), { code: label, originalCode: code }), {
      host: "mail.example.test",
      port: 587,
      security: "starttls",
      oauth: false,
      redactor: new Redactor([]),
    });
  },
  "http (mailgun, postmark)": (code) =>
    networkError("Mailgun", new TypeError("fetch failed", { cause: systemError(code) }), 30_000),
  ses: (code) => sesError(systemError(code), []),
};

describe.each(Object.entries(drivers))("the failure class of network events: %s", (_name, map) => {
  it.each([
    ["ENOTFOUND", "dns_not_found", "server"],
    ["EAI_AGAIN", "dns_not_found", "server"],
    ["ECONNREFUSED", "connection_refused", "server"],
    ["EHOSTUNREACH", "connection_timeout", "server"],
    ["ECONNRESET", "connection_dropped", "transient"],
  ])("%s → %s (%s)", (code, errorCode, kind) => {
    const error = map(code);
    expect(error.code).toBe(errorCode);
    expect(error.kind).toBe(kind);
  });
});

describe("networkFailure", () => {
  it("finds the system code on the error, its originalCode or its cause", () => {
    expect(networkFailure(["EDNS", "ENOTFOUND"])).toMatchObject({ code: "dns_not_found", kind: "server" });
    expect(networkFailure(["UND_ERR_CONNECT_TIMEOUT"])).toMatchObject({ code: "connection_timeout", kind: "server" });
    expect(networkFailure(["CERT_HAS_EXPIRED"])).toMatchObject({ code: "tls_certificate_invalid", kind: "server" });
    expect(networkFailure(["EAUTH"])).toBeUndefined();
  });
});
