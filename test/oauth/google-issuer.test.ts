/**
 * Google's endpoints overridden (MAILROOM_GOOGLE_*_URL at the local issuer), as with an
 * egress proxy in front of Google: the ID token, and the iss of the authorization reply, say
 * Google's own issuer. Both are accepted; any other issuer is still refused. With
 * MAILROOM_GOOGLE_ISSUER, another issuer may name itself as it likes.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { availableDialects } from "../helpers/databases.js";
import { FROM, type Harness, outcomeOf, startHarness } from "./harness.js";

const GOOGLE = "https://accounts.google.com";

/** The issuer the authorization reply names in its `iss` parameter. */
function replyIssuer(h: Harness, iss: string): void {
  h.issuer.server.service.once("beforeAuthorizeRedirect", ({ url }: { url: URL }) => url.searchParams.set("iss", iss));
}

describe.each(await availableDialects())("Google's own issuer through overridden endpoints on %s", (dialect) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(dialect, "google");
  });
  afterAll(() => h?.close());

  it.each([GOOGLE, "accounts.google.com"])("accepts an ID token issued by %s", async (iss) => {
    const id = await h.createServer();
    h.issuer.idTokenIssuer = iss;
    try {
      replyIssuer(h, GOOGLE);
      expect(outcomeOf(await h.connect(id)).oauth).toBe("success");
    } finally {
      h.issuer.idTokenIssuer = null;
    }
    expect(await h.server(id)).toMatchObject({ status: "ready", settings: { authorizedAccount: FROM } });
  });

  it("still refuses an ID token from any other issuer", async () => {
    const id = await h.createServer();
    h.issuer.idTokenIssuer = "https://accounts.google.com.attacker.example";
    try {
      expect(outcomeOf(await h.connect(id))).toMatchObject({ oauth: "error", code: "oauth_exchange_failed" });
    } finally {
      h.issuer.idTokenIssuer = null;
    }
    expect(await h.tokenRow(id)).toBeUndefined();
  });
});

describe("MAILROOM_GOOGLE_ISSUER", () => {
  let h: Harness;
  const own = "https://sso.internal.example";
  beforeAll(async () => {
    h = await startHarness("sqlite", "google", { MAILROOM_GOOGLE_ISSUER: own });
  });
  afterAll(() => h?.close());

  it("is the issuer another Google-like issuer names in its ID tokens and replies", async () => {
    const id = await h.createServer();
    h.issuer.idTokenIssuer = own;
    try {
      replyIssuer(h, own);
      expect(outcomeOf(await h.connect(id)).oauth).toBe("success");
    } finally {
      h.issuer.idTokenIssuer = null;
    }
    expect((await h.server(id)).status).toBe("ready");
  });
});
