import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { Type } from "typebox";
import type { Mailroom } from "../../app.js";
import type { Principal } from "../../auth/permissions.js";
import type { EmailServerInput } from "../../core/email-servers.js";
import { MailroomError } from "../../kernel/errors.js";
import type { TestStep } from "../../kernel/transport.js";
import { isEmailAddress } from "../../kernel/validate.js";
import { type TestReport, testServer } from "../../queue/server-test.js";
import { requirePrincipal, requireServerAccess } from "../auth.js";
import { IdParams, ref, replies } from "../schemas.js";

const modeFields = {
  mode: Type.Union([Type.Literal("check"), Type.Literal("send")]),
  to: Type.Optional(Type.String({ maxLength: 320 })),
};

const tags = ["email servers"];

type Run = (onStep?: (step: TestStep) => void) => Promise<TestReport>;

/**
 * Answers a test as JSON, or, for `Accept: application/x-ndjson`, as one line per step the
 * moment it ends and a last line with the whole report: the admin watches the steps come.
 */
async function answer(request: FastifyRequest, reply: FastifyReply, run: Run): Promise<TestReport | undefined> {
  if (!String(request.headers.accept ?? "").includes("application/x-ndjson")) return run();
  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(200, {
    ...(reply.getHeaders() as Record<string, string>),
    "content-type": "application/x-ndjson; charset=utf-8",
    "cache-control": "no-store",
  });
  try {
    const report = await run((step) => raw.write(`${JSON.stringify({ type: "step", step })}\n`));
    raw.end(`${JSON.stringify({ type: "report", report })}\n`);
  } catch (error) {
    request.log.error({ err: error }, "server test failed");
    raw.end(`${JSON.stringify({ type: "error", error: new MailroomError("internal_error").toBody() })}\n`);
  }
  return undefined;
}

/** Tests that may run at once for one user: each holds sockets (or a process) for up to a minute a step. */
export const MAX_CONCURRENT_TESTS = 3;

/** Counts running tests per user; an API token counts as its owner, so tokens cannot multiply the limit. */
class TestSlots {
  private readonly running = new Map<string, number>();

  /** Takes a slot or answers too_many_tests; the returned function gives it back (once). */
  take(principal: Principal): () => void {
    const key = principal.userId ?? `${principal.kind}:${principal.id}`;
    const count = this.running.get(key) ?? 0;
    if (count >= MAX_CONCURRENT_TESTS) {
      throw new MailroomError(
        "too_many_tests",
        `${MAX_CONCURRENT_TESTS} server tests of yours are running: wait for one to finish, then test again.`,
      );
    }
    this.running.set(key, count + 1);
    let given = false;
    return () => {
      if (given) return;
      given = true;
      const left = (this.running.get(key) ?? 1) - 1;
      if (left > 0) this.running.set(key, left);
      else this.running.delete(key);
    };
  }
}

export function serverTestRoutes(app: FastifyInstance, mailroom: Mailroom): void {
  const slots = new TestSlots();

  /** Runs a test in one of the caller's slots, held until the last step (streamed or not) is out. */
  async function bounded(request: FastifyRequest, reply: FastifyReply, run: Run): Promise<TestReport | undefined> {
    const release = slots.take(requirePrincipal(request));
    try {
      return await answer(request, reply, run);
    } finally {
      release();
    }
  }

  /** The test recipient: the one given, else the caller's own email. */
  function recipient(request: Parameters<typeof requirePrincipal>[0], to: string | undefined): string {
    const address = to?.trim() || requirePrincipal(request).email || "";
    if (!isEmailAddress(address)) {
      throw new MailroomError("invalid_address", "to: give the address the test should use, e.g. you@example.com.", [
        { field: "to", message: "must be an email address" },
      ]);
    }
    return address;
  }

  app.post(
    "/api/email-servers/:id/test",
    {
      schema: {
        tags,
        summary: "Test a saved server: 'check' proves connection and login without sending; 'send' also sends a test message",
        params: IdParams,
        body: Type.Object(modeFields, { additionalProperties: false }),
        // The JSON answer; a streamed one (application/x-ndjson) is written as it comes, unserialized.
        response: replies(200, ref("TestReport")),
      },
    },
    async (request, reply) => {
      const body = request.body as { mode: "check" | "send"; to?: string };
      const row = await mailroom.servers.getRow((request.params as { id: string }).id);
      const to = recipient(request, body.to);
      // A saved server's test email goes to the delivery log, where "Open it" finds it.
      const log = { db: mailroom.ctx.db, createdBy: requirePrincipal(request).id };
      return bounded(request, reply, (onStep) =>
        testServer(mailroom.transports, row, mailroom.servers.secretsOf(row), { mode: body.mode, to, onStep, log }),
      );
    },
  );

  app.post(
    "/api/email-servers/test",
    {
      schema: {
        tags,
        summary: "Test an unsaved configuration (secrets left out are taken from the saved server 'basedOn')",
        body: Type.Object(
          {
            ...modeFields,
            basedOn: Type.Optional(Type.String({ maxLength: 200 })),
            server: Type.Object(
              {
                name: Type.Optional(Type.String({ maxLength: 200 })),
                driver: Type.String({ maxLength: 64 }),
                fromAddress: Type.Optional(Type.String({ maxLength: 320 })),
                fromName: Type.Optional(Type.String({ maxLength: 400 })),
                settings: Type.Optional(Type.Record(Type.String({ maxLength: 64 }), Type.Unknown())),
              },
              { additionalProperties: false },
            ),
          },
          { additionalProperties: false },
        ),
        response: replies(200, ref("TestReport")),
      },
    },
    async (request, reply) => {
      const body = request.body as { mode: "check" | "send"; to?: string; basedOn?: string; server: EmailServerInput };
      if (body.basedOn) await requireServerAccess(request, mailroom, body.basedOn);
      const { row, secrets } = await mailroom.servers.draft(body.server, body.basedOn);
      const to = recipient(request, body.to);
      return bounded(request, reply, (onStep) => testServer(mailroom.transports, row, secrets, { mode: body.mode, to, onStep }));
    },
  );
}
