import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { Type } from "typebox";
import type { Mailroom } from "../../app.js";
import { SESSION_COOKIE } from "../../auth/sessions.js";
import type { CountedAttempt, SignInThrottle } from "../../auth/throttle.js";
import { writeAudit } from "../../core/audit.js";
import { fieldError, MailroomError } from "../../kernel/errors.js";
import { actorOf, requirePrincipal } from "../auth.js";
import { ref, replies } from "../schemas.js";

export function authRoutes(app: FastifyInstance, mailroom: Mailroom, throttle: SignInThrottle): void {
  const secureCookie = mailroom.ctx.config.publicUrl.startsWith("https:");

  /**
   * Checks a password under the guessing limits: per account and per client address
   * (request.ip, the client's behind a trusted proxy). A refusal answers 429 with Retry-After.
   */
  async function checkPassword<T>(request: FastifyRequest, reply: FastifyReply, email: string, check: () => Promise<T | null>) {
    const keys = throttle.keys(email, request.ip);
    let counted: CountedAttempt[];
    try {
      counted = await throttle.begin(keys);
    } catch (error) {
      const seconds = (error as MailroomError).details as { retryAfterSeconds?: number } | undefined;
      if (seconds?.retryAfterSeconds) reply.header("retry-after", String(seconds.retryAfterSeconds));
      throw error;
    }
    const result = await check();
    await throttle.settle(counted, result !== null);
    return result;
  }

  app.post(
    "/api/auth/login",
    {
      schema: {
        tags: ["auth"],
        summary:
          "Sign in; sets the session cookie and returns the CSRF token for writes. mustChangePassword: true means the password is one-time: change it before anything else",
        body: Type.Object(
          { email: Type.String({ maxLength: 254 }), password: Type.String({ maxLength: 1024 }) },
          { additionalProperties: false },
        ),
        response: replies(200, ref("SignedIn")),
      },
    },
    async (request, reply) => {
      const { email, password } = request.body as { email: string; password: string };
      const user = await checkPassword(request, reply, email, () => mailroom.users.authenticate(email, password));
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
      return {
        user: await mailroom.users.get(user.id),
        csrfToken: session.csrfToken,
        mustChangePassword: user.must_change_password === 1,
      };
    },
  );

  app.post("/api/auth/logout", { schema: { tags: ["auth"], summary: "Sign out" } }, async (request, reply) => {
    const cookie = request.cookies[SESSION_COOKIE];
    if (cookie) await mailroom.sessions.delete(cookie);
    reply.clearCookie(SESSION_COOKIE, { path: "/" });
    return reply.status(204).send();
  });

  app.get(
    "/api/auth/me",
    { schema: { tags: ["auth"], summary: "Who is signed in, with the CSRF token", response: replies(200, ref("Me")) } },
    async (request) => {
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
    },
  );

  app.post(
    "/api/auth/password",
    {
      schema: {
        tags: ["auth"],
        summary:
          "Change your own password (also a one-time one); every session of yours ends, this one too: sign in again. Wrong current passwords count towards the sign-in limits",
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
      const email = principal.email;
      if (!(await checkPassword(request, reply, email, () => mailroom.users.authenticate(email, currentPassword)))) {
        throw new MailroomError("invalid_credentials", "The current password is wrong.");
      }
      if (newPassword === currentPassword) {
        throw fieldError("validation_failed", [{ field: "newPassword", message: "must differ from the current password" }]);
      }
      await mailroom.users.update(principal.id, { password: newPassword, mustChangePassword: false }, actorOf(request));
      reply.clearCookie(SESSION_COOKIE, { path: "/" });
      return reply.status(204).send();
    },
  );
}
