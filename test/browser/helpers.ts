/**
 * Browser test helpers: Debian's Chromium driven by playwright-core, a few waits, and the steps a
 * user takes often enough to name them. Page scripts are passed as strings so this file needs no
 * DOM typings.
 */
import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { chromium, type Browser, type BrowserContext, type Locator, type Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, beforeEach, expect } from "vitest";
import WebSocket from "ws";
import { createClient, type EdgechatClient, type WebSocketConstructor } from "../../client/index.js";
import { startDevServer, type DevServer } from "../support/dev-server.js";

const root = new URL("../../", import.meta.url).pathname;
export const SCREENSHOTS = join(root, "test-results", "browser");
export const PASSWORD = "correct horse battery";

export const DESKTOP = { width: 1280, height: 800 };
/** The sizes the web app's layout is checked at (issue reports came from these). */
export const WIDE = { width: 1440, height: 900 };
export const PHONE = { width: 390, height: 844 };

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"],
  });
}

/**
 * Opens `url` in `page` until the app's script has run. About one page load in a hundred on a busy
 * machine never gets its app.js from `wrangler dev` (the request stays pending with no response; a
 * plain HTTP client fetching the same file 200 times saw no stall): a second load goes through, as
 * a person's reload would. "domcontentloaded", not "load": the tests wait for what they need on the
 * page, and "load" also waits for every picture.
 */
export async function navigate(page: Page, url: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await page.goto(url, { waitUntil: "domcontentloaded", timeout: 30_000 });
      return;
    } catch (err) {
      if (attempt >= 3 || !(err instanceof Error && err.name === "TimeoutError")) throw err;
      console.error(`page load of ${url} timed out (attempt ${attempt}); loading it again`);
    }
  }
}

/** Keeps a page's console errors and uncaught exceptions, for assertions and failure messages. */
export function watchErrors(page: Page, name: string): string[] {
  const errors: string[] = [];
  page.on("pageerror", (err) => errors.push(`${name}: ${err.message}`));
  page.on("console", (msg) => {
    // Failed requests while the server is deliberately down are expected noise.
    if (msg.type() === "error" && !/Failed to load resource|ERR_CONNECTION_REFUSED|ERR_INTERNET_DISCONNECTED|WebSocket connection/.test(msg.text())) {
      errors.push(`${name}: ${msg.text()}`);
    }
  });
  return errors;
}

/**
 * Saves a picture of the page in test-results/browser/ (gitignored) to look at. Entry animations
 * (dialogs, toasts, banners) are finished first; nothing is asserted from the picture.
 */
export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  // Let finite animations (a dialog popping in, a toast) end first. Spinners run for ever: waiting
  // for their end hung a test until a re-render happened to replace the spinner.
  await page.evaluate(`Promise.race([
    Promise.all(document.getAnimations()
      .filter((a) => a.effect?.getComputedTiming().endTime !== Infinity)
      .map((a) => a.finished.catch(() => {}))),
    new Promise((resolve) => setTimeout(resolve, 2000)),
  ])`).catch(() => {});
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`) });
}

const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

/**
 * Runs axe-core on the page as it is (WCAG 2.1 A and AA rules) and returns one line per
 * violation: rule, impact, and the first elements it found.
 */
export async function accessibilityViolations(page: Page, screen: string): Promise<string[]> {
  // Evaluated through the DevTools protocol: the app's Content-Security-Policy refuses inline <script>.
  if (!(await page.evaluate<boolean>("typeof window.axe === 'object'"))) await page.evaluate(AXE_SOURCE);
  const found = await page.evaluate<{ id: string; impact: string; help: string; targets: string[] }[]>(`
    axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] }, resultTypes: ["violations"] })
      .then((r) => r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, targets: v.nodes.slice(0, 3).map((n) => n.target.join(" ")) })))`);
  return found.map((v) => `${screen}: ${v.id} (${v.impact}) ${v.help} — ${v.targets.join(" | ")}`);
}

/** Retries `check` (which throws or returns false) until it passes. */
export async function eventually(what: string, check: () => Promise<boolean | void> | boolean | void, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      if ((await check()) !== false) return;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last instanceof Error ? `: ${last.message}` : ""}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Waits until the locator's text (trimmed, whitespace collapsed) matches. */
export async function textOf(locator: Locator, expected: string | RegExp, timeoutMs = 30_000): Promise<void> {
  let seen = "";
  await eventually(`text ${String(expected)} (last seen: "${seen}")`, async () => {
    seen = ((await locator.textContent({ timeout: 1_000 })) ?? "").replace(/\s+/g, " ").trim();
    return typeof expected === "string" ? seen === expected : expected.test(seen);
  }, timeoutMs).catch((err: unknown) => {
    throw new Error(`${err instanceof Error ? err.message : String(err)}; last text: "${seen}"`);
  });
}

export async function signUp(page: Page, url: string, username: string, displayName: string): Promise<void> {
  await navigate(page, url);
  await page.getByRole("button", { name: "Create an account" }).click();
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Display name").fill(displayName);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Create account" }).click();
  await page.getByRole("button", { name: "New conversation" }).waitFor();
}

export function composer(page: Page): Locator {
  return page.getByRole("textbox", { name: /^Message / });
}

export async function sendMessage(page: Page, text: string): Promise<void> {
  const box = composer(page);
  await box.fill(text);
  await box.press("Enter");
}

/** A message row by its text. */
export function message(page: Page, text: string): Locator {
  return page.locator("li.msg", { has: page.locator(".msg-text", { hasText: text }) });
}

/** The status line under the user's own last message ("Sent", "Read by …", "Sending…"). */
export function lastStatus(page: Page): Locator {
  return page.locator("li.msg-mine [data-testid=msg-status]").last();
}

export function channelItem(page: Page, title: string): Locator {
  return page.locator(".channel-item", { has: page.locator(".ci-name", { hasText: title }) });
}

export function banner(page: Page): Locator {
  return page.locator(".banner");
}

/** Evaluates a script in the page (a string, so the test needs no DOM types). */
export function run<T>(page: Page, script: string): Promise<T> {
  return page.evaluate<T>(script);
}

/** A user made over REST, as a test's starting point. */
export interface TestUser {
  user_id: string;
  username: string;
  display_name: string;
  access_token: string;
  refresh_token: string;
}

let users = 0;

/** Registers a user with a unique username (`prefix` plus a counter and a random tail). */
export async function registerUser(url: string, prefix: string, displayName: string): Promise<TestUser> {
  const username = `${prefix}_${++users}${Math.random().toString(36).slice(2, 7)}`.slice(0, 32);
  const res = await fetch(`${url}/v1/auth/register`, {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ username, password: PASSWORD, display_name: displayName }),
  });
  if (res.status !== 201) throw new Error(`register ${username}: ${res.status} ${await res.text()}`);
  return (await res.json()) as TestUser;
}

/** PATCH /v1/me/settings for a user (read receipts are off until a user turns them on). */
export async function updateSettings(url: string, user: TestUser, patch: { read_receipts?: boolean; share_presence?: boolean }): Promise<void> {
  const res = await fetch(`${url}/v1/me/settings`, {
    method: "PATCH", headers: { "content-type": "application/json", authorization: `Bearer ${user.access_token}` }, body: JSON.stringify(patch),
  });
  if (!res.ok) throw new Error(`settings: ${res.status} ${await res.text()}`);
}

/** The SDK on Node, signed in as `user` on its own device (a phone, a laptop). */
export function sdkClient(url: string, user: TestUser, deviceId: string): EdgechatClient {
  return createClient({ url, deviceId, credentials: { username: user.username, password: PASSWORD }, WebSocket: WebSocket as unknown as WebSocketConstructor });
}

/**
 * One test's browsers: each profile is a fresh context signed in as a user (the session the web
 * app would have stored), every page's console errors kept. `close()` ends them all.
 */
export class Profiles {
  /** Every tab opened, by name (for failure reports). */
  readonly pages = new Map<string, Page>();
  private readonly contexts: BrowserContext[] = [];
  private readonly watched: string[][] = [];

  constructor(private readonly browser: Browser, private readonly url: string) {}

  /** A browser profile; signed in as `user` if given. */
  async profile(options: { user?: TestUser; viewport?: { width: number; height: number }; localStorage?: Record<string, string> } = {}): Promise<BrowserContext> {
    const local: { name: string; value: string }[] = Object.entries(options.localStorage ?? {}).map(([name, value]) => ({ name, value }));
    if (options.user) {
      const { user_id, username, display_name, refresh_token } = options.user;
      local.push({ name: "edgechat.session", value: JSON.stringify({ user_id, username, display_name, refresh_token }) });
    }
    const context = await this.browser.newContext({
      viewport: options.viewport ?? DESKTOP, locale: "en-US", timezoneId: "UTC",
      storageState: { cookies: [], origins: [{ origin: this.url, localStorage: local }] },
    });
    this.contexts.push(context);
    return context;
  }

  /** A tab in `context` at `path`, its errors watched under `name`. */
  async tab(context: BrowserContext, name: string, path = "/"): Promise<Page> {
    const page = await context.newPage();
    this.watched.push(watchErrors(page, name));
    this.pages.set(name, page);
    await navigate(page, `${this.url}${path}`);
    return page;
  }

  /** A signed-in profile with one tab open at `path` (a channel: `/#c/<id>`), connected. */
  async open(user: TestUser, name: string, options: { path?: string; viewport?: { width: number; height: number } } = {}): Promise<Page> {
    const context = await this.profile({ user, ...(options.viewport ? { viewport: options.viewport } : {}) });
    const page = await this.tab(context, name, options.path ?? "/");
    await connected(page);
    return page;
  }

  /** Console errors and uncaught exceptions of every page so far. */
  allErrors(): string[] {
    return [...new Set(this.watched.flat())];
  }

  async close(): Promise<void> {
    for (const c of this.contexts.splice(0)) await withTimeout(c.close()).catch(() => {});
  }
}

/** Fails with the axe-core findings of this screen, if any. */
export async function expectAccessible(page: Page, screen: string): Promise<void> {
  const found = await accessibilityViolations(page, screen);
  if (found.length > 0) throw new Error(`accessibility violations:\n${found.join("\n")}`);
}

/** Waits until the page's realtime connection is ready (the banner, hidden, carries the state). */
export async function connected(page: Page, timeoutMs = 60_000): Promise<void> {
  await page.locator('.banner[data-state="ready"]').waitFor({ state: "attached", timeout: timeoutMs });
}

/**
 * Reloads once the page's requests are done. A reload that aborts requests still in flight can
 * kill wrangler 4.86's dev server on a loaded machine ("Error inside ProxyWorker: Network
 * connection lost", workers-sdk #15451), which ends every test after it; the app itself copes.
 */
export async function reloadWhenIdle(page: Page): Promise<void> {
  await page.waitForLoadState("networkidle").catch(() => {});
  await page.reload({ waitUntil: "domcontentloaded" });
}

/** What a browser test file shares: its server and browser, and the running test's profiles. */
export interface BrowserSuite {
  readonly server: DevServer;
  readonly browser: Browser;
  /** The current test's browser profiles; closed (and their pages' errors checked) after it. */
  readonly profiles: Profiles;
}

/**
 * The setup of a browser test file, as hooks: one `wrangler dev` and one Chromium for the file,
 * fresh profiles for each test, closed after it. Console errors and uncaught exceptions (a CSP
 * refusal is one) fail the test whose pages caused them. When a test fails, each page still open
 * says where it was (URL, connection, banner, last messages) and is saved as
 * test-results/browser/failure-<prefix><page>.png, followed by wrangler's last lines.
 *
 * @example
 * const suite = browserSuite("retention-");
 * it("...", async () => { const page = await suite.profiles.open(user, "alice"); });
 */
export function browserSuite(screenshotPrefix = ""): BrowserSuite {
  let server: DevServer | undefined;
  let browser: Browser | undefined;
  let profiles: Profiles | undefined;
  beforeAll(async () => {
    server = await startDevServer();
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });
  beforeEach(() => {
    profiles = new Profiles(suite.browser, suite.server.url);
  });
  afterEach(async ({ task }) => {
    if (!profiles) return;
    if (task.result?.state === "fail") await describeFailure(task.name, profiles, server, screenshotPrefix);
    const errors = profiles.allErrors();
    await profiles.close();
    expect(errors).toEqual([]);
  });
  const ready = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`browserSuite: no ${what} yet (used outside a test?)`);
    return value;
  };
  const suite: BrowserSuite = {
    get server() { return ready(server, "server"); },
    get browser() { return ready(browser, "browser"); },
    get profiles() { return ready(profiles, "profiles"); },
  };
  return suite;
}

/** What each page still open shows, a picture of it, and wrangler's last lines; each step bounded. */
export async function describeFailure(test: string, profiles: Profiles, server: DevServer | undefined, prefix = ""): Promise<void> {
  for (const [name, page] of profiles.pages) {
    if (page.isClosed()) continue;
    const state = await withTimeout(run<string>(page, `JSON.stringify({
      url: location.href,
      connection: document.querySelector(".banner")?.dataset.state,
      banner: document.querySelector(".banner")?.textContent,
      last: [...document.querySelectorAll("li.msg")].slice(-4).map((el) => el.textContent),
    })`)).catch((err: unknown) => String(err));
    console.error(`[${test}] ${name}: ${state}`);
    await withTimeout(screenshot(page, `failure-${prefix}${name.replace(/\s+/g, "-")}`)).catch(() => {});
  }
  if (server) console.error(`[${test}] wrangler dev, last lines:\n${server.log.slice(-40).join("\n")}`);
}

/** `work`, or a rejection after `ms`: a hung page must not hold up the report of a failure. */
function withTimeout<T>(work: Promise<T>, ms = 5_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms); });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}
