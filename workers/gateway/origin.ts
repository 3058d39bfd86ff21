/**
 * Which web pages may open a WebSocket to this Worker. Browsers let any page connect to any
 * WebSocket and send its cookies and stored credentials along, so the gateway checks the
 * `Origin` header browsers always send: the Worker's own origin is allowed, and so is every
 * origin in `ALLOWED_ORIGINS` (comma-separated; "*" allows any). Clients that are not browsers
 * (apps, servers, the SDK on Node) send no Origin and are not affected.
 */

/**
 * @example
 * originAllowed("https://chat.example.com", "https://chat.example.com/v1/connect", "") // true
 * originAllowed("https://evil.example", "https://chat.example.com/v1/connect", "")     // false
 * originAllowed(null, "https://chat.example.com/v1/connect", "")                        // true (not a browser)
 */
export function originAllowed(origin: string | null, requestUrl: string, allowed: string | undefined): boolean {
  if (origin === null) return true;
  const own = new URL(requestUrl).origin;
  if (origin === own) return true;
  for (const entry of (allowed ?? "").split(",")) {
    const wanted = entry.trim();
    if (wanted === "*") return true;
    if (wanted !== "" && normalise(wanted) === origin) return true;
  }
  return false;
}

/** "https://Chat.example.com/" → "https://chat.example.com"; anything unparsable matches nothing. */
function normalise(origin: string): string | undefined {
  try {
    return new URL(origin).origin;
  } catch {
    return undefined;
  }
}
