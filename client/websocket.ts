/**
 * Where the SDK's WebSocket comes from: the `WebSocket` option, else the platform's own (browsers,
 * Cloudflare Workers, Node ≥ 22), else the `ws` package, an optional peer dependency that Node 20
 * needs. `ws` is loaded on the first `connect()`, never at import time, so the SDK imports cleanly
 * everywhere (no top-level await) and browser bundles never see it.
 */
import type { WebSocketConstructor } from "./types.js";

export const NO_WEBSOCKET_MESSAGE =
  "No WebSocket implementation: this runtime has none and the `ws` package is not installed. Install it (`npm install ws`) or pass createClient({ WebSocket }).";

export function platformWebSocket(): WebSocketConstructor | undefined {
  return (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
}

let wsPackage: Promise<WebSocketConstructor | undefined> | undefined;

/** The `ws` package's WebSocket, or undefined when it is not installed or this is not Node. Loaded once. */
export function loadWsPackage(): Promise<WebSocketConstructor | undefined> {
  if (!maybeNode()) return Promise.resolve(undefined);
  wsPackage ??= importOptional("ws").then(
    (mod) => {
      const m = mod as { WebSocket?: WebSocketConstructor; default?: WebSocketConstructor };
      return m.WebSocket ?? m.default;
    },
    () => undefined,
  );
  return wsPackage;
}

// Only Node (before 22) lacks a WebSocket, so `ws` is looked for nowhere else. Node 21+ says
// "Node.js/21…" in navigator.userAgent, Node 20 has no navigator, Workers say "Cloudflare-Workers".
function maybeNode(): boolean {
  const userAgent = (globalThis as { navigator?: { userAgent?: unknown } }).navigator?.userAgent;
  return typeof userAgent !== "string" || userAgent.startsWith("Node.js");
}

// The specifier is a parameter, not a literal, so bundlers leave the import alone: a browser build
// must neither resolve nor include `ws`. The comments keep Vite and webpack from warning about it.
function importOptional(specifier: string): Promise<unknown> {
  return import(/* @vite-ignore */ /* webpackIgnore: true */ specifier);
}
