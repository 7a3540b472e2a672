import type { IncomingMessage, ServerResponse } from "node:http";
import cookie from "@fastify/cookie";
import rateLimit from "@fastify/rate-limit";
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import { Ajv } from "ajv";
import formats from "ajv-formats";
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from "fastify";
import helmet from "helmet";
import type { Mailroom } from "../app.js";
import { SignInThrottle, type ThrottleLimits } from "../auth/throttle.js";
import type { Config } from "../config.js";
import { MailroomError } from "../kernel/errors.js";
import { registerAuth } from "./auth.js";
import { registerControlCharacterCheck } from "./control-characters.js";
import { errorHandlerFor } from "./errors.js";
import { eventResponseSchemas } from "./event-schemas.js";
import { alertRoutes } from "./routes/alerts.js";
import { auditRoutes } from "./routes/audit.js";
import { authRoutes } from "./routes/auth.js";
import { captureRoutes } from "./routes/capture.js";
import { emailServerRoutes } from "./routes/email-servers.js";
import { healthRoutes } from "./routes/health.js";
import { infoRoutes } from "./routes/info.js";
import { messageRoutes } from "./routes/messages.js";
import { oauthRoutes } from "./routes/oauth.js";
import { providerEventRoutes } from "./routes/provider-events.js";
import { recipientRoutes } from "./routes/recipients.js";
import { retentionRoutes } from "./routes/retention.js";
import { routeRoutes } from "./routes/routes.js";
import { serverTestRoutes } from "./routes/server-tests.js";
import { smtpRoutes } from "./routes/smtp.js";
import { statsRoutes } from "./routes/stats.js";
import { suppressionRoutes } from "./routes/suppressions.js";
import { userRoutes } from "./routes/users.js";
import { webhookRoutes } from "./routes/webhooks.js";
import { responseSchemas } from "./schemas.js";
import { registerWebUi } from "./web-ui.js";

export interface ServerOptions {
  /** Failed sign-ins and password changes allowed before each attempt must wait; tests raise or lower them. */
  signInLimits?: ThrottleLimits;
  /** The clock of those limits (default: Mailroom's own); tests move it instead of sleeping. */
  now?: () => number;
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

/**
 * Fastify trusts addresses as given; a hop count it refuses outright (it cannot tell a proxy
 * from a client), so the count becomes "the nearest n hops", as the operator asked: right
 * only when nothing reaches Mailroom but through those proxies (docs/operations.md).
 */
function trustProxyOption(trust: Config["trustProxy"]): false | string[] | ((address: string, hop: number) => boolean) {
  if (typeof trust !== "number") return trust;
  return (_address, hop) => hop < trust;
}

/**
 * Helmet's headers, worked out once: @fastify/helmet ran helmet anew for every request
 * (parsing the policy each time), a few percent of a single message's CPU. A route may still
 * set its own (the captured message's stricter policy).
 */
export function securityHeaders(https: boolean): Record<string, string> {
  const headers: Record<string, string> = {};
  const response = {
    setHeader: (name: string, value: unknown) => {
      headers[name.toLowerCase()] = String(value);
    },
    removeHeader: (name: string) => {
      delete headers[name.toLowerCase()];
    },
  };
  helmet({
    contentSecurityPolicy: {
      directives: {
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        // Over plain HTTP (the default, http://localhost:8025) upgrading would break the admin UI.
        "upgrade-insecure-requests": https ? [] : null,
      },
    },
  })({} as IncomingMessage, response as unknown as ServerResponse, () => {});
  return headers;
}

export async function buildServer(mailroom: Mailroom, options: ServerOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: mailroom.ctx.log as FastifyBaseLogger,
    bodyLimit: DEFAULT_BODY_LIMIT,
    exposeHeadRoutes: false,
    // Above the default 100, so an address of up to 254 characters, percent-encoded, reaches
    // the route's own check (DELETE /api/recipients/:address/data) and its catalogue error.
    routerOptions: { maxParamLength: 1024 },
    // request.ip is the client's only through the proxies the operator trusts (MAILROOM_TRUST_PROXY).
    trustProxy: trustProxyOption(mailroom.ctx.config.trustProxy),
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
  const headers = securityHeaders(mailroom.ctx.config.publicUrl.startsWith("https:"));
  app.addHook("onRequest", (_request, reply, done) => {
    reply.headers(headers);
    done();
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
    // Shared shapes keep their $id as their name in components.schemas (the generated web types use it).
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === "string" ? json.$id : `def-${i}`),
    },
  });
  for (const schema of [...responseSchemas, ...eventResponseSchemas]) app.addSchema(schema);
  await app.register(swaggerUi, { routePrefix: "/api/docs" });

  registerAuth(app, mailroom);
  registerControlCharacterCheck(app);
  app.addHook("onResponse", async (request, reply) => {
    mailroom.metrics.httpRequests.inc({
      method: request.method,
      route: request.routeOptions.url ?? "unmatched",
      status: String(reply.statusCode),
    });
  });
  healthRoutes(app, mailroom);
  const throttle = new SignInThrottle(mailroom.ctx.db, options.signInLimits);
  throttle.now = options.now ?? mailroom.ctx.clock;
  authRoutes(app, mailroom, throttle);
  infoRoutes(app, mailroom);
  emailServerRoutes(app, mailroom);
  oauthRoutes(app, mailroom);
  serverTestRoutes(app, mailroom);
  messageRoutes(app, mailroom);
  routeRoutes(app, mailroom);
  captureRoutes(app, mailroom);
  recipientRoutes(app, mailroom);
  userRoutes(app, mailroom);
  auditRoutes(app, mailroom);
  statsRoutes(app, mailroom);
  retentionRoutes(app, mailroom);
  alertRoutes(app, mailroom);
  smtpRoutes(app, mailroom);
  providerEventRoutes(app, mailroom);
  suppressionRoutes(app, mailroom);
  webhookRoutes(app, mailroom);
  await registerWebUi(app);
  await app.ready();
  return app;
}
