/** Application webhooks (docs/events.md): the sink that records events, the dispatcher, the service. */
import type { AppContext } from "../../core/context.js";
import { WebhookDispatcher } from "./dispatcher.js";
import { WebhookRegistry } from "./registry.js";
import { WebhookService } from "./service.js";

export interface Webhooks {
  /** The MessageEventSink: ctx.messageEvents. */
  registry: WebhookRegistry;
  /** Posts due deliveries; started by `serve` (or a test) with dispatcher.start(). */
  dispatcher: WebhookDispatcher;
  service: WebhookService;
}

export function createWebhooks(ctx: AppContext, options: { concurrency: number; pollMs: number }): Webhooks {
  const registry = new WebhookRegistry(ctx.db, ctx.clock, (error) =>
    ctx.log.warn({ err: error }, "webhooks: could not read the webhooks again; the last view stays in force"),
  );
  const dispatcher = new WebhookDispatcher(ctx, registry, options);
  registry.onRecorded = (ids) => dispatcher.expect(ids);
  return { registry, dispatcher, service: new WebhookService(ctx, registry, dispatcher) };
}
