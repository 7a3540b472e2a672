import { describe, expect, it } from "vitest";
import { isHost } from "../../src/kernel/validate.js";

describe("isHost", () => {
  it("accepts IPv6 addresses as Node parses them", () => {
    for (const host of ["::1", "fe80::1", "2001:db8::8a2e:370:7334", "::ffff:192.0.2.1"]) expect(isHost(host), host).toBe(true);
  });

  it("refuses strings of IPv6 characters that are no address", () => {
    for (const host of ["1::2::3", "ab:cd", ":::", "1.2.3.4:25"]) expect(isHost(host), host).toBe(false);
  });

  it("still accepts names and IPv4 addresses", () => {
    for (const host of ["smtp.example.com", "bücher.example", "192.0.2.10"]) expect(isHost(host), host).toBe(true);
    expect(isHost("256.1.1.1")).toBe(false);
  });
});
