/**
 * Headers on every response the Worker itself makes (the REST API, refused upgrades). The web
 * app's static files get theirs from web/public/_headers, which the assets server applies.
 *
 * The API answers JSON meant for scripts, never pages: no sniffing it into something else, no
 * framing, no referrer, no caching of personal data unless a route says otherwise. HSTS goes out
 * over https only; the web app calls the API on load, so the browser learns it for the host.
 */

const FIXED: [string, string][] = [
  ["X-Content-Type-Options", "nosniff"],
  ["Referrer-Policy", "no-referrer"],
  ["X-Frame-Options", "DENY"],
  ["Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"],
];
export const HSTS = "max-age=31536000; includeSubDomains";

/** `response` with the headers above; WebSocket upgrades (101) pass unchanged. */
export function withSecurityHeaders(response: Response, request: Request): Response {
  if (response.status === 101 || response.webSocket) return response;
  const secured = new Response(response.body, response);
  const headers = secured.headers;
  for (const [name, value] of FIXED) headers.set(name, value);
  if (!headers.has("Cache-Control")) headers.set("Cache-Control", "no-store");
  if (new URL(request.url).protocol === "https:") headers.set("Strict-Transport-Security", HSTS);
  return secured;
}
