import { describe, expect, it } from "vitest";
import { routeMatches } from "../../src/core/routes.js";
import { failoverFor } from "../../src/queue/routing.js";
import type { RoutesTable } from "../../src/storage/schema.js";

const rule = (match: Partial<RoutesTable>): RoutesTable => ({
  id: "r",
  name: "r",
  position: 1,
  match_from: null,
  match_token_id: null,
  match_tag: null,
  match_recipient_domain: null,
  server_ids: "[]",
  created_at: 0,
  updated_at: 0,
  ...match,
});
const facts = { from: "Billing@Example.com", tokenId: "tok", tag: "invoice", recipients: ["a@example.net", "b@EXAMPLE.net"] };

describe("route matching", () => {
  it("matches the From by address or domain, case-insensitively, and never a sub-domain", () => {
    expect(routeMatches(rule({ match_from: "billing@example.com" }), facts)).toBe(true);
    expect(routeMatches(rule({ match_from: "example.com" }), facts)).toBe(true);
    expect(routeMatches(rule({ match_from: "other@example.com" }), facts)).toBe(false);
    expect(routeMatches(rule({ match_from: "example.com" }), { ...facts, from: "x@mail.example.com" })).toBe(false);
  });

  it("needs every condition, and every recipient in the recipient domain", () => {
    expect(routeMatches(rule({ match_tag: "invoice", match_token_id: "tok" }), facts)).toBe(true);
    expect(routeMatches(rule({ match_tag: "invoice", match_token_id: "other" }), facts)).toBe(false);
    expect(routeMatches(rule({ match_tag: "invoice", match_token_id: "tok" }), { ...facts, tokenId: null })).toBe(false);
    expect(routeMatches(rule({ match_recipient_domain: "example.net" }), facts)).toBe(true);
    expect(
      routeMatches(rule({ match_recipient_domain: "example.net" }), { ...facts, recipients: ["a@example.net", "c@example.org"] }),
    ).toBe(false);
  });
});

describe("failover by failure class", () => {
  const retried = { status: "queued" as const };
  const spent = { status: "failed" as const };
  it("moves on at once for server problems, rate limits and a lost grant", () => {
    for (const kind of ["server", "rate_limited", "reauthorization"] as const) expect(failoverFor(kind, retried)).toBe("any");
  });
  it("moves a temporary failure on only once its retries here are spent, and only forward", () => {
    expect(failoverFor("transient", retried)).toBeNull();
    expect(failoverFor("transient", spent)).toBe("later");
  });
  it("never moves a message or recipient refused for good", () => {
    expect(failoverFor("recipient", spent)).toBeNull();
    expect(failoverFor("message", spent)).toBeNull();
  });
});
