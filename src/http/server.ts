import cookie from "@fastify/cookie";
import helmet from "@fastify/helmet";
import rateLimit from "@fastify/rate-limit";
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import { Ajv } from "ajv";
import formats from "ajv-formats";
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from "fastify";
import type { Mailroom } from "../app.js";
import { MailroomError } from "../core/errors.js";
import { registerAuth } from "./auth.js";
import { errorHandlerFor } from "./errors.js";
import { auditRoutes } from "./routes/audit.js";
import { authRoutes, type LoginLimit } from "./routes/auth.js";
import { captureRoutes } from "./routes/capture.js";
import { emailServerRoutes } from "./routes/email-servers.js";
import { healthRoutes } from "./routes/health.js";
import { messageRoutes } from "./routes/messages.js";
import { oauthRoutes } from "./routes/oauth.js";
import { serverTestRoutes } from "./routes/server-tests.js";
import { statsRoutes } from "./routes/stats.js";
import { userRoutes } from "./routes/users.js";
import { registerWebUi } from "./web-ui.js";

export interface ServerOptions {
  /** Sign-in attempts per IP address and window; tests raise it. */
  loginLimit?: LoginLimit;
}

/** 100 KB for every route but message submission, which sets its own 10 MB limit. */
export const DEFAULT_BODY_LIMIT = 100 * 1024;

function makeAjv(coerceTypes: boolean): Ajv {
  // removeAdditional stays off: an unknown field is an error the caller should hear about.
  const ajv = new Ajv({ coerceTypes, useDefaults: true, removeAdditional: false, allErrors: true, strict: false });
  // ajv-formats is CommonJS with a default export; under NodeNext it arrives one level down.
  (formats as unknown as { default: (a: Ajv) => void }).default(ajv);
  return ajv;
}

export async function buildServer(mailroom: Mailroom, options: ServerOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: mailroom.ctx.log as FastifyBaseLogger,
    bodyLimit: DEFAULT_BODY_LIMIT,
    exposeHeadRoutes: false,
    trustProxy: false,
  });

  // Bodies are checked strictly (a string "587" is not a port); query strings are text, so coerce.
  const bodyAjv = makeAjv(false);
  const queryAjv = makeAjv(true);
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === "body" ? bodyAjv : queryAjv).compile(schema));
  app.setErrorHandler(errorHandlerFor(mailroom.ctx.storage.health));
  app.setNotFoundHandler((request, reply) => {
    const error = new MailroomError("not_found", `No route ${request.method} ${request.url.split("?")[0]}.`);
    void reply.status(404).send(error.toBody());
  });

  await app.register(cookie);
  await app.register(helmet, {
    contentSecurityPolicy: {
      directives: {
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        // Over plain HTTP (the default, http://localhost:8025) upgrading would break the admin UI.
        "upgrade-insecure-requests": mailroom.ctx.config.publicUrl.startsWith("https:") ? [] : null,
      },
    },
  });
  await app.register(rateLimit, { global: false });
  await app.register(swagger, {
    openapi: {
      info: { title: "Mailroom API", version: "0.1.0", description: "Email server settings and delivery." },
      components: {
        securitySchemes: {
          bearer: { type: "http", scheme: "bearer" },
          session: { type: "apiKey", in: "cookie", name: "mailroom_session" },
        },
      },
      security: [{ bearer: [] }, { session: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: "/api/docs" });

  registerAuth(app, mailroom);
  app.addHook("onResponse", async (request, reply) => {
    mailroom.metrics.httpRequests.inc({
      method: request.method,
      route: request.routeOptions.url ?? "unmatched",
      status: String(reply.statusCode),
    });
  });
  healthRoutes(app, mailroom);
  authRoutes(app, mailroom, options.loginLimit ?? { max: 10, timeWindow: 60_000 });
  emailServerRoutes(app, mailroom);
  oauthRoutes(app, mailroom);
  serverTestRoutes(app, mailroom);
  messageRoutes(app, mailroom);
  captureRoutes(app, mailroom);
  userRoutes(app, mailroom);
  auditRoutes(app, mailroom);
  statsRoutes(app, mailroom);
  await registerWebUi(app);
  await app.ready();
  return app;
}
