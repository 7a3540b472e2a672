import type { LightMyRequestResponse } from "fastify";
import { expect } from "vitest";
import { drivers } from "../../src/drivers/registry.js";
import type { Caller, TestApp } from "../helpers/app.js";

/**
 * Valid settings for every registered driver (its own `example`), and the status a server
 * with them has: an OAuth driver waits for its account, every other one is ready.
 */
export function fixtureFor(driverId: string): { settings: Record<string, unknown>; status: string } {
  const driver = drivers.find((d) => d.id === driverId);
  if (!driver) throw new Error(`No registered driver '${driverId}'`);
  return { settings: { ...driver.example }, status: driver.oauthProvider ? "not_authorized" : "ready" };
}

export const driverIds = drivers.map((d) => d.id);

/** The secret field keys of a driver. */
export function secretKeysOf(driverId: string): string[] {
  return (drivers.find((d) => d.id === driverId)?.fields ?? []).filter((f) => f.secret).map((f) => f.key);
}

export interface ServerBody {
  name: string;
  driver: string;
  fromAddress?: string;
  fromName?: string;
  settings?: Record<string, unknown>;
  isDefault?: boolean;
}

export function serverBody(driver: string, name: string, extra: Partial<ServerBody> = {}): ServerBody {
  return {
    name,
    driver,
    fromAddress: "noreply@example.com",
    fromName: "Example Sender",
    settings: fixtureFor(driver).settings,
    ...extra,
  };
}

/** POSTs a server and expects 201; returns the view. */
export async function createServer(t: TestApp, body: ServerBody, caller: Caller = t.admin) {
  const res = await t.request(caller, { method: "POST", url: "/api/email-servers", payload: body });
  expect(res.statusCode, res.body).toBe(201);
  return res.json();
}

export async function listServers(t: TestApp, q?: string): Promise<{ items: { name: string; id: string }[]; total: number }> {
  const url = q === undefined ? "/api/email-servers?limit=500" : `/api/email-servers?limit=500&q=${encodeURIComponent(q)}`;
  const res = await t.request(t.admin, { method: "GET", url });
  expect(res.statusCode, res.body).toBe(200);
  return res.json();
}

export async function auditTotal(t: TestApp): Promise<number> {
  const res = await t.request(t.admin, { method: "GET", url: "/api/audit?limit=1" });
  expect(res.statusCode, res.body).toBe(200);
  return res.json().total;
}

/** The newest audit entries (newest first). */
export async function auditEntries(t: TestApp, query = ""): Promise<AuditItem[]> {
  const res = await t.request(t.admin, { method: "GET", url: `/api/audit?limit=500${query}` });
  expect(res.statusCode, res.body).toBe(200);
  return res.json().items;
}

export interface AuditItem {
  id: number;
  action: string;
  actor: { type: string; id: string | null; label: string };
  target: { type: string; id: string | null };
  before: Record<string, unknown> | null;
  after: Record<string, unknown> | null;
}

/** Asserts an error reply: status, code and (optionally) that the message or details name something. */
export function expectError(res: LightMyRequestResponse, status: number, code: string): { message: string; details?: unknown } {
  expect(res.statusCode, res.body).toBe(status);
  const body = res.json();
  expect(body.code, res.body).toBe(code);
  expect(typeof body.message).toBe("string");
  expect(body.message.length).toBeGreaterThan(10);
  return body;
}
