import type { FastifyInstance } from "fastify";
import { Type } from "typebox";
import type { Mailroom } from "../../app.js";
import { SESSION_COOKIE } from "../../auth/sessions.js";
import { writeAudit } from "../../core/audit.js";
import { MailroomError } from "../../core/errors.js";
import { actorOf, requirePrincipal } from "../auth.js";

export interface LoginLimit {
  max: number;
  timeWindow: number;
}

export function authRoutes(app: FastifyInstance, mailroom: Mailroom, loginLimit: LoginLimit): void {
  const secureCookie = mailroom.ctx.config.publicUrl.startsWith("https:");

  app.post(
    "/api/auth/login",
    {
      config: { rateLimit: loginLimit },
      schema: {
        tags: ["auth"],
        summary: "Sign in; sets the session cookie and returns the CSRF token for writes",
        body: Type.Object(
          { email: Type.String({ maxLength: 254 }), password: Type.String({ maxLength: 1024 }) },
          { additionalProperties: false },
        ),
      },
    },
    async (request, reply) => {
      const { email, password } = request.body as { email: string; password: string };
      const user = await mailroom.users.authenticate(email, password);
      if (!user) {
        // Same answer for an unknown user, a wrong password and a disabled account.
        await writeAudit(mailroom.ctx.db, actorOf(request), {
          action: "auth.login_failed",
          targetType: "user",
          targetId: null,
          after: { email: email.slice(0, 254) },
        });
        throw new MailroomError("invalid_credentials");
      }
      const session = await mailroom.sessions.create(user.id);
      reply.setCookie(SESSION_COOKIE, session.cookie, {
        httpOnly: true,
        sameSite: "strict",
        secure: secureCookie,
        path: "/",
        expires: new Date(session.expiresAt),
      });
      return { user: await mailroom.users.get(user.id), csrfToken: session.csrfToken };
    },
  );

  app.post("/api/auth/logout", { schema: { tags: ["auth"], summary: "Sign out" } }, async (request, reply) => {
    const cookie = request.cookies[SESSION_COOKIE];
    if (cookie) await mailroom.sessions.delete(cookie);
    reply.clearCookie(SESSION_COOKIE, { path: "/" });
    return reply.status(204).send();
  });

  app.get("/api/auth/me", { schema: { tags: ["auth"], summary: "Who is signed in, with the CSRF token" } }, async (request) => {
    const principal = requirePrincipal(request);
    if (principal.kind === "token") {
      return {
        token: {
          id: principal.id,
          label: principal.label,
          permissions: [...principal.permissions],
          serverIds: principal.serverIds,
        },
      };
    }
    const cookie = request.cookies[SESSION_COOKIE] as string;
    const session = await mailroom.sessions.find(cookie);
    return { user: await mailroom.users.get(principal.id), csrfToken: session?.csrfToken ?? null };
  });

  app.post(
    "/api/auth/password",
    {
      schema: {
        tags: ["auth"],
        summary: "Change your own password; every session of yours ends, this one too: sign in again",
        body: Type.Object(
          { currentPassword: Type.String({ maxLength: 1024 }), newPassword: Type.String({ maxLength: 1024 }) },
          { additionalProperties: false },
        ),
      },
    },
    async (request, reply) => {
      const principal = requirePrincipal(request);
      if (principal.kind !== "user" || !principal.email)
        throw new MailroomError("forbidden", "Only a signed-in user has a password.");
      const { currentPassword, newPassword } = request.body as { currentPassword: string; newPassword: string };
      if (!(await mailroom.users.authenticate(principal.email, currentPassword))) {
        throw new MailroomError("invalid_credentials", "The current password is wrong.");
      }
      await mailroom.users.update(principal.id, { password: newPassword }, actorOf(request));
      reply.clearCookie(SESSION_COOKIE, { path: "/" });
      return reply.status(204).send();
    },
  );
}
