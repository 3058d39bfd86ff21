/**
 * The edgechat Worker: one script for the WebSocket gateway, the REST API, every Durable
 * Object class and the queue consumers. Static files (the web app) are served by the assets binding before this runs.
 */
import { api } from "./api/app.js";
import { connect } from "./gateway/connect.js";
import { blobRoute, isBlobPath } from "./attachments/blob-routes.js";
import { withSecurityHeaders } from "./security-headers.js";
import { consumePushBatch } from "../queues/push-consumer.js";
import { consumePushDeadLetters } from "../queues/push-dead-letters.js";
import { consumeErasureBatch, consumeErasureDeadLetters } from "../queues/erasure-consumer.js";
import { observe } from "../shared/observability.js";

export { ChannelObject } from "../durable-objects/channel/ChannelObject.js";
export { UserObject } from "../durable-objects/user/UserObject.js";
export { PresenceObject } from "../durable-objects/presence/PresenceObject.js";
export { ThrottleObject } from "../durable-objects/throttle/ThrottleObject.js";
export { RelayObject } from "../durable-objects/relay/RelayObject.js";

export default {
  async fetch(request, env, ctx): Promise<Response> {
    observe(env);
    const url = new URL(request.url);
    // Signed-URL uploads and downloads: no bearer token, bodies larger than the API's 64 KiB, and
    // headers of their own (user content, sandboxed: blob-routes.ts), so they skip the API's.
    if (isBlobPath(url.pathname)) return blobRoute(request, env);
    const response = url.pathname === "/v1/connect" ? await connect(request, env) : await api.fetch(request, env, ctx);
    return withSecurityHeaders(response, request);
  },

  /** Queue consumers, by queue name (wrangler.toml [[queues.consumers]]). */
  async queue(batch, env, _ctx): Promise<void> {
    observe(env);
    if (batch.queue.startsWith("edgechat-erasure")) {
      if (batch.queue.endsWith("-dlq")) await consumeErasureDeadLetters(batch);
      else await consumeErasureBatch(batch, env);
    } else if (batch.queue.endsWith("-dlq")) await consumePushDeadLetters(batch, env);
    else await consumePushBatch(batch, env);
  },
} satisfies ExportedHandler<Env>;
