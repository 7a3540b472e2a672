import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_PASSWORD } from "../helpers/app.js";
import { availableDialects } from "../helpers/databases.js";
import { CLIENT_ID, FROM, type Harness, outcomeOf, startHarness } from "./harness.js";
import { TENANT_ID } from "./issuer.js";

const s256 = (verifier: string) => createHash("sha256").update(verifier).digest("base64url");

const dialects = await availableDialects();

describe.each(dialects)("Authorize account on %s", (dialect) => {
  describe.each(["google", "microsoft"] as const)("with %s", (kind) => {
    let h: Harness;
    beforeAll(async () => {
      h = await startHarness(dialect, kind);
    });
    afterAll(() => h?.close());

    it("goes from the authorization URL through the issuer to a ready server with encrypted tokens", async () => {
      const id = await h.createServer();
      expect(await h.server(id)).toMatchObject({ status: "not_authorized" });

      const url = await h.authorize(id);
      const q = url.searchParams;
      const callbackPath = `/oauth/${kind}/callback`;
      expect(q.get("client_id")).toBe(CLIENT_ID);
      expect(q.get("redirect_uri")).toBe(`http://localhost:8025${callbackPath}`);
      expect(q.get("response_type")).toBe("code");
      expect(q.get("code_challenge_method")).toBe("S256");
      expect(q.get("code_challenge")).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(q.get("state")?.length).toBeGreaterThanOrEqual(32);
      expect(q.get("login_hint")).toBe(FROM);
      if (kind === "google") {
        expect(url.pathname).toBe("/authorize");
        expect(q.get("scope")).toBe("https://mail.google.com/ openid email");
        expect(q.get("access_type")).toBe("offline");
        expect(q.get("prompt")).toBe("consent");
      } else {
        expect(url.pathname).toBe("/organizations/oauth2/v2.0/authorize");
        expect(q.get("scope")).toBe("https://outlook.office.com/SMTP.Send offline_access openid email");
      }
      // The state is stored only as a hash, the PKCE verifier only encrypted.
      const pending = await h.t.mailroom.ctx.db.selectFrom("oauth_authorizations").selectAll().execute();
      expect(pending.map((p) => p.state_hash)).toContain(
        createHash("sha256")
          .update(q.get("state") as string)
          .digest("hex"),
      );
      expect(JSON.stringify(pending)).not.toContain(q.get("state"));

      const callback = await h.followIssuer(url);
      expect(callback.pathname).toBe(callbackPath);
      expect(callback.searchParams.get("state")).toBe(q.get("state"));
      const location = await h.callback(callback);
      expect(outcomeOf(location)).toEqual({ page: `/servers/${id}`, oauth: "success", code: null });

      // PKCE: the verifier sent with the code matches the challenge of the authorization URL.
      const exchange = h.issuer.requests.find((r) => r.grantType === "authorization_code");
      expect(exchange?.codeVerifier).toBeDefined();
      expect(s256(exchange?.codeVerifier as string)).toBe(q.get("code_challenge"));

      const server = await h.server(id);
      expect(server.status).toBe("ready");
      const settings = server.settings as Record<string, unknown>;
      expect(settings.authorizedAccount).toBe(FROM);
      expect(String(settings.grantedScopes)).toContain(kind === "google" ? "https://mail.google.com/" : "SMTP.Send");
      expect(Date.parse(String(settings.authorizedAt))).toBeGreaterThan(Date.now() - 60_000);

      const row = await h.tokenRow(id);
      expect(row).toBeDefined();
      const box = h.t.mailroom.ctx.secrets;
      expect(String(row?.refresh_token)).toMatch(/^mr1:/);
      expect(String(row?.access_token)).toMatch(/^mr1:/);
      expect(h.issuer.issued).toContain(box.decrypt(String(row?.refresh_token)));
      expect(h.issuer.issued).toContain(box.decrypt(String(row?.access_token)));
      expect(Number(row?.access_expires_at)).toBeGreaterThan(Date.now() + 3000_000);

      // The token provider hands out the stored token without asking the issuer again.
      const before = h.issuer.requests.length;
      const provider = h.t.mailroom.oauth.tokenProvider(id);
      expect(await provider.user()).toBe(FROM);
      expect(await provider.accessToken(false)).toBe(box.decrypt(String(row?.access_token)));
      expect(h.issuer.requests.length).toBe(before);

      const actions = (await h.audit()).filter((a) => a.target_id === id).map((a) => a.action);
      expect(actions).toEqual(expect.arrayContaining(["email_server.oauth.start", "email_server.oauth.authorize"]));
      await h.expectNoLeaks();
    });

    it("checks an iss parameter in the provider's reply against the provider's issuer", async () => {
      const own = kind === "google" ? h.issuer.url : `${h.issuer.url}/${TENANT_ID}/v2.0`;
      const id = await h.createServer();
      h.issuer.server.service.once("beforeAuthorizeRedirect", ({ url }: { url: URL }) => url.searchParams.set("iss", own));
      expect(outcomeOf(await h.connect(id)).oauth).toBe("success");

      const other = await h.createServer();
      h.issuer.server.service.once("beforeAuthorizeRedirect", ({ url }: { url: URL }) =>
        url.searchParams.set("iss", "https://issuer.attacker.example"),
      );
      expect(outcomeOf(await h.connect(other))).toMatchObject({ oauth: "error", code: "oauth_exchange_failed" });
      expect(await h.tokenRow(other)).toBeUndefined();
    });

    it("disconnects: revokes where the provider can, forgets the tokens, back to not_authorized", async () => {
      const id = await h.createServer();
      await h.connect(id);
      const revocations = h.issuer.revocations;
      const res = await h.request(h.t.admin, { method: "DELETE", url: `/api/email-servers/${id}/oauth` });
      expect(res.statusCode, res.body).toBe(200);
      const body = res.json();
      expect(body.server).toMatchObject({ id, status: "not_authorized" });
      expect(body.server.settings.authorizedAccount).toBeNull();
      if (kind === "google") {
        expect(body.revoked).toBe(true);
        expect(h.issuer.revocations).toBe(revocations + 1);
      } else {
        expect(body.revoked).toBe(false);
        expect(body.notice).toMatch(/no revocation endpoint.*myapps\.microsoft\.com/);
      }
      expect(await h.tokenRow(id)).toBeUndefined();
      await expect(h.t.mailroom.oauth.tokenProvider(id).accessToken(false)).rejects.toMatchObject({
        code: "oauth_not_authorized",
        kind: "reauthorization",
      });
      expect((await h.audit("email_server.oauth.disconnect")).map((a) => a.target_id)).toContain(id);
      await h.expectNoLeaks();
    });
  });
});

describe.each(dialects)("Refused authorizations on %s", (dialect) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(dialect, "google");
  });
  afterAll(() => h?.close());

  /** Checks a refusal: the redirect names the code, it is audited, and nothing is stored. */
  async function expectRefused(location: URL, id: string | null, code: string) {
    expect(outcomeOf(location)).toEqual({ page: id ? `/servers/${id}` : "/servers", oauth: "error", code });
    const refusals = await h.audit("email_server.oauth.refused");
    const last = refusals.at(-1);
    expect(last?.target_id).toBe(id);
    expect(JSON.parse(String(last?.after))).toMatchObject({ provider: "google", code });
    if (id) {
      expect(await h.tokenRow(id)).toBeUndefined();
      expect(await h.server(id)).toMatchObject({ status: "not_authorized" });
    }
  }

  it("refuses a forged state without asking the issuer", async () => {
    const requests = h.issuer.requests.length;
    const forged = new URL(
      "http://localhost:8025/oauth/google/callback?code=stolen-code-123456&state=made-up-state-abcdefghijklmnop",
    );
    await expectRefused(await h.callback(forged), null, "oauth_state_invalid");
    await expectRefused(
      await h.callback(new URL("http://localhost:8025/oauth/google/callback?code=x")),
      null,
      "oauth_state_invalid",
    );
    expect(h.issuer.requests.length).toBe(requests);
  });

  it("refuses a state used twice", async () => {
    const id = await h.createServer();
    const callback = await h.followIssuer(await h.authorize(id));
    expect(outcomeOf(await h.callback(callback)).oauth).toBe("success");
    const row = await h.tokenRow(id);
    const requests = h.issuer.requests.length;
    expect(outcomeOf(await h.callback(callback))).toMatchObject({ oauth: "error", code: "oauth_state_reused" });
    expect(h.issuer.requests.length).toBe(requests);
    expect((await h.tokenRow(id))?.generation).toBe(row?.generation);
  });

  it("refuses a state older than 10 minutes", async () => {
    const id = await h.createServer();
    const url = await h.authorize(id);
    const hash = createHash("sha256")
      .update(url.searchParams.get("state") as string)
      .digest("hex");
    await h.t.mailroom.ctx.db
      .updateTable("oauth_authorizations")
      .set({ created_at: Date.now() - 11 * 60_000, expires_at: Date.now() - 60_000 })
      .where("state_hash", "=", hash)
      .execute();
    await expectRefused(await h.callback(await h.followIssuer(url)), id, "oauth_state_expired");
  });

  it("refuses when the PKCE verifier does not match the challenge", async () => {
    const id = await h.createServer();
    const url = await h.authorize(id);
    const hash = createHash("sha256")
      .update(url.searchParams.get("state") as string)
      .digest("hex");
    const wrong = "a-different-verifier-that-is-long-enough-for-rfc7636-0123456789";
    await h.t.mailroom.ctx.db
      .updateTable("oauth_authorizations")
      .set({ code_verifier: h.t.mailroom.ctx.secrets.encrypt(wrong) })
      .where("state_hash", "=", hash)
      .execute();
    await expectRefused(await h.callback(await h.followIssuer(url)), id, "oauth_code_rejected");
  });

  it("refuses a callback in another user's browser, one without the permission, and one signed out", async () => {
    const id = await h.createServer();
    const viewer = await h.t.userWith(["email-servers.view"]);
    await expectRefused(await h.callback(await h.followIssuer(await h.authorize(id)), viewer), id, "oauth_session_mismatch");

    // Another session of the very same admin is not the session that started it either.
    const otherSession = await h.t.login("admin@example.com", ADMIN_PASSWORD);
    await expectRefused(
      await h.callback(await h.followIssuer(await h.authorize(id)), otherSession),
      id,
      "oauth_session_mismatch",
    );

    // A browser with no cookies at all did not start it.
    await expectRefused(await h.callback(await h.followIssuer(await h.authorize(id)), null), id, "oauth_session_mismatch");
  });

  it("accepts the starting browser coming back from the provider without its SameSite=Strict session cookie", async () => {
    const id = await h.createServer();
    const toCallback = await h.followIssuer(await h.authorize(id));
    // Back from another site, the browser sends the Lax binding cookie but not the Strict session cookie.
    const returning = { headers: { cookie: `mailroom_oauth=${h.bindingOf(h.t.admin)}` } };
    const location = await h.callback(toCallback, returning);
    expect(outcomeOf(location).oauth).toBe("success");
    expect((await h.server(id)).status).toBe("ready");
    const [entry] = (await h.audit("email_server.oauth.authorize")).slice(-1);
    expect(entry?.target_id).toBe(id);
  });

  it("refuses when the user lost email-servers.update between start and callback", async () => {
    const id = await h.createServer();
    const { users } = h.t.mailroom;
    const editor = await h.t.userWith(["email-servers.view", "email-servers.update"], "editor@example.com");
    const url = await h.authorize(id, editor);
    const group = (await users.listGroups()).items.find((g) => g.name === "group-editor@example.com");
    await users.updateGroup(
      group?.id as string,
      { name: "group-editor@example.com", permissions: ["email-servers.view"] },
      {
        type: "system",
        id: null,
        label: "test",
      },
    );
    await expectRefused(await h.callback(await h.followIssuer(url), editor), id, "forbidden");
  });

  it("says access_denied when the user declines on the consent page", async () => {
    const id = await h.createServer();
    h.issuer.server.service.once("beforeAuthorizeRedirect", ({ url }: { url: URL }) => {
      url.searchParams.delete("code");
      url.searchParams.set("error", "access_denied");
      url.searchParams.set("error_description", "The user denied access");
    });
    const requests = h.issuer.requests.length;
    await expectRefused(await h.callback(await h.followIssuer(await h.authorize(id))), id, "oauth_access_denied");
    expect(h.issuer.requests.length).toBe(requests);
    const reason = JSON.parse(String((await h.audit("email_server.oauth.refused")).at(-1)?.after)).reason;
    expect(reason).toContain("The user denied access");
  });

  it("refuses a grant without the SMTP scope, and gives the token back", async () => {
    const id = await h.createServer();
    h.issuer.grantedScope = "openid https://www.googleapis.com/auth/userinfo.email";
    const revocations = h.issuer.revocations;
    try {
      await expectRefused(await h.callback(await h.followIssuer(await h.authorize(id))), id, "oauth_scope_missing");
    } finally {
      h.issuer.grantedScope = "https://mail.google.com/ openid https://www.googleapis.com/auth/userinfo.email";
    }
    expect(h.issuer.revocations).toBe(revocations + 1);
  });

  it.each([
    ["invalid_client", 401, "oauth_invalid_client"],
    ["redirect_uri_mismatch", 400, "oauth_redirect_uri_mismatch"],
    ["invalid_grant", 400, "oauth_code_rejected"],
    ["server_error", 503, "oauth_exchange_failed"],
  ])("maps a token endpoint %s (%i) to %s", async (error, status, code) => {
    const id = await h.createServer();
    h.issuer.next.push((response) => {
      response.statusCode = status;
      response.body = { error, error_description: "Bad Request" };
    });
    await expectRefused(await h.callback(await h.followIssuer(await h.authorize(id))), id, code);
  });

  it("learns the account from userinfo when the ID token has no email", async () => {
    const id = await h.createServer();
    h.issuer.emailInIdToken = false;
    try {
      expect(outcomeOf(await h.connect(id)).oauth).toBe("success");
    } finally {
      h.issuer.emailInIdToken = true;
    }
    expect(((await h.server(id)).settings as Record<string, unknown>).authorizedAccount).toBe(FROM);
  });

  it("answers precise errors to the authorize call itself", async () => {
    const id = await h.createServer();
    const viewer = await h.t.userWith(["email-servers.view"]);
    let res = await h.request(viewer, { method: "POST", url: `/api/email-servers/${id}/oauth/authorize` });
    expect(res.statusCode).toBe(403);
    expect(res.json().code).toBe("forbidden");

    const created = await h.request(h.t.admin, {
      method: "POST",
      url: "/api/tokens",
      payload: { name: "automation", permissions: ["email-servers.update"] },
    });
    expect(created.statusCode, created.body).toBe(201);
    res = await h.request(
      { headers: { authorization: `Bearer ${created.json().token}` } },
      { method: "POST", url: `/api/email-servers/${id}/oauth/authorize` },
    );
    expect(res.statusCode).toBe(400);
    expect(res.json().code).toBe("oauth_session_required");

    const capture = (await h.request(h.t.admin, { method: "GET", url: "/api/email-servers/Capture" })).json().id;
    res = await h.request(h.t.admin, { method: "POST", url: `/api/email-servers/${capture}/oauth/authorize` });
    expect(res.statusCode).toBe(409);
    expect(res.json().code).toBe("oauth_not_supported");

    const noSecret = await h.createServer("no secret", { clientSecret: null });
    res = await h.request(h.t.admin, { method: "POST", url: `/api/email-servers/${noSecret}/oauth/authorize` });
    expect(res.statusCode).toBe(409);
    expect(res.json()).toMatchObject({ code: "oauth_client_missing", details: { missing: ["clientSecret"] } });
  });

  it("leaves no token, code or secret in logs, answers, audit entries or the database", async () => {
    expect(h.issuer.issued.length).toBeGreaterThan(5);
    await h.expectNoLeaks();
  });
});
