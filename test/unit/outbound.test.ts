import type { LookupAddress } from "node:dns";
import { describe, expect, it } from "vitest";
import { guardedLookup } from "../../src/events/outbound.js";
import { type OperatorPolicy, STRICT_OPERATOR } from "../../src/kernel/operator-policy.js";
import { parseAllowedEndpoint } from "../../src/transport/operator.js";

/** What the connection's own lookup answers for `host` (the check a URL's form cannot make). */
function resolve(
  operator: OperatorPolicy,
  host: string,
): Promise<{ error: (Error & { code?: string }) | null; addresses: string[] }> {
  const url = new URL(`https://${host}:9443/hook`);
  return new Promise((done) =>
    guardedLookup(operator, url, "webhooks")(host, { all: true }, (error, addresses) =>
      done({ error, addresses: (addresses as LookupAddress[]).map((a) => a.address) }),
    ),
  );
}

describe("the events layer's connect-time address check", () => {
  it("refuses a host name that resolves to loopback, unless the operator lists the endpoint", async () => {
    const refused = await resolve(STRICT_OPERATOR, "localhost");
    expect(refused.error?.code).toBe("endpoint_not_allowed");
    expect(refused.error?.message).toMatch(/resolves to/);
    expect(refused.addresses).toEqual([]);

    const listed = { ...STRICT_OPERATOR, allowedEndpoints: [parseAllowedEndpoint("localhost")].flatMap((e) => (e ? [e] : [])) };
    const allowed = await resolve(listed, "localhost");
    expect(allowed.error).toBeNull();
    expect(allowed.addresses.length).toBeGreaterThan(0);
  });
});
