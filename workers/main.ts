/**
 * The edgechat Worker: one script for the WebSocket gateway, the REST API and every Durable
 * Object class. Static files (the web app) are served by the assets binding before this runs.
 */
import { api } from "./api/app.js";
import { connect } from "./gateway/connect.js";
import { withSecurityHeaders } from "./security-headers.js";

export { ChannelObject } from "../durable-objects/channel/ChannelObject.js";
export { UserObject } from "../durable-objects/user/UserObject.js";
export { PresenceObject } from "../durable-objects/presence/PresenceObject.js";

export default {
  async fetch(request, env, ctx): Promise<Response> {
    const url = new URL(request.url);
    const response = url.pathname === "/v1/connect" ? await connect(request, env) : await api.fetch(request, env, ctx);
    return withSecurityHeaders(response, request);
  },
} satisfies ExportedHandler<Env>;
