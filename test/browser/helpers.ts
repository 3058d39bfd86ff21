/**
 * Browser test helpers: Debian's Chromium driven by playwright-core, a few waits, and the steps a
 * user takes often enough to name them. Page scripts are passed as strings so this file needs no
 * DOM typings.
 */
import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { chromium, type Browser, type Locator, type Page } from "playwright-core";

const root = new URL("../../", import.meta.url).pathname;
export const SCREENSHOTS = join(root, "test-results", "browser");
export const PASSWORD = "correct horse battery";

export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"],
  });
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

export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  // Let entry animations (dialogs, toasts, banners) settle.
  await page.waitForTimeout(350);
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`) });
}

const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

/**
 * Runs axe-core on the page as it is (WCAG 2.1 A and AA rules) and returns one line per
 * violation: rule, impact, and the first elements it found.
 */
export async function accessibilityViolations(page: Page, screen: string): Promise<string[]> {
  if (!(await page.evaluate<boolean>("typeof window.axe === 'object'"))) await page.addScriptTag({ content: AXE_SOURCE });
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
  await page.goto(url);
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
