import { describe, expect, it } from "vitest";
import { classifyStorageError, StorageHealth } from "../../src/storage/health.js";

const withCode = (code: string, message = "x") => Object.assign(new Error(message), { code });

describe("classifyStorageError", () => {
  it.each([
    [withCode("57P01", "terminating connection due to administrator command"), "unavailable"],
    [withCode("57P03", "the database system is starting up"), "unavailable"],
    [withCode("08006"), "unavailable"],
    [withCode("ECONNREFUSED", "connect ECONNREFUSED 127.0.0.1:5432"), "unavailable"],
    // localhost resolves to ::1 and 127.0.0.1: Node reports both refusals at once.
    [new AggregateError([withCode("ECONNREFUSED"), withCode("ECONNREFUSED")]), "unavailable"],
    [new Error("Connection terminated unexpectedly"), "unavailable"],
    [new Error("timeout exceeded when trying to connect"), "unavailable"],
    [withCode("SQLITE_IOERR_WRITE"), "unavailable"],
    [withCode("SQLITE_FULL", "database or disk is full"), "full"],
    [withCode("53100", "could not extend file: No space left on device"), "full"],
    [withCode("ENOSPC"), "full"],
    [withCode("SQLITE_BUSY"), "busy"],
    [withCode("SQLITE_LOCKED_SHAREDCACHE"), "busy"],
    [withCode("53300", "sorry, too many clients already"), "busy"],
  ])("%s is %s", (error, fault) => {
    expect(classifyStorageError(error)?.fault).toBe(fault);
  });

  it.each([
    [withCode("23505", "duplicate key value violates unique constraint")],
    [withCode("SQLITE_CONSTRAINT_UNIQUE")],
    [new Error("cannot rollback - no transaction is active")],
    [new TypeError("x is undefined")],
  ])("%s is not a storage failure", (error) => {
    expect(classifyStorageError(error)).toBeNull();
  });
});

describe("StorageHealth", () => {
  function recording() {
    const lines: string[] = [];
    const log = {
      error: (_: object, m: string) => lines.push(`error ${m}`),
      info: (_: object, m: string) => lines.push(`info ${m}`),
    };
    return { lines, health: new StorageHealth({ dialect: "sqlite", dataDir: "/srv/mailroom/data" }, log) };
  }

  it("logs an outage once when it starts and once when it ends, not at every failure", () => {
    const { lines, health } = recording();
    for (let i = 0; i < 50; i++) expect(health.failed(withCode("SQLITE_IOERR"))?.code).toBe("storage_unavailable");
    expect(health.current).toMatchObject({ fault: "unavailable", failures: 50 });
    // A query sent before the outage began and answered since proves nothing.
    health.succeeded("read", (health.current?.since ?? 0) - 1);
    expect(health.current).not.toBeNull();
    health.succeeded("read", Date.now() + 1);
    health.succeeded("read", Date.now() + 1);
    expect(health.current).toBeNull();
    expect(lines).toEqual([
      "error the database file cannot be read or written; requests answer 503 storage_unavailable",
      "info the database answers again",
    ]);
  });

  it("a full disk names the data folder and ends only with a write", () => {
    const { lines, health } = recording();
    const error = health.failed(withCode("SQLITE_FULL", "database or disk is full"));
    expect(error).toMatchObject({ code: "storage_full", status: 507 });
    expect(error?.message).toContain("free disk space in /srv/mailroom/data");
    health.succeeded("read", Date.now() + 1);
    expect(health.current?.fault).toBe("full");
    health.succeeded("write", Date.now() + 1);
    expect(health.current).toBeNull();
    expect(lines).toHaveLength(2);
  });

  it("a busy database is no outage", () => {
    const { lines, health } = recording();
    expect(health.failed(withCode("SQLITE_BUSY"))).toMatchObject({ code: "storage_busy", status: 503 });
    expect(health.current).toBeNull();
    expect(lines).toEqual([]);
  });
});
