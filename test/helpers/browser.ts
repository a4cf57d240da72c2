/**
 * Debian's Chromium driven by playwright-core, for the web UI tests. The browser is the
 * `chromium` package's binary (scripts/setup --test-peers installs it); a missing browser
 * fails the test with a message saying so, never a silent skip. Screenshots go to
 * .tmp/ui-screenshots/ (git-ignored).
 */
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { type Browser, type Page, chromium } from "playwright-core";

/** The Debian chromium binary. */
export const CHROMIUM = "/usr/lib/chromium/chromium";

/** Where the tests save screenshots (git-ignored). */
export const SCREENSHOTS = join(import.meta.dir, "../../.tmp/ui-screenshots");

/** Launches headless Chromium; `await using` closes it. */
export async function launchChromium(): Promise<Browser & AsyncDisposable> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium is missing at "${CHROMIUM}": install the Debian package with scripts/setup --test-peers (apt-get install chromium)`);
  }
  mkdirSync(SCREENSHOTS, { recursive: true });
  // --no-sandbox: the tests may run as root in a container, where Chromium's sandbox cannot start
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox", "--disable-gpu"] });
  return Object.assign(browser, { [Symbol.asyncDispose]: () => browser.close() });
}

/** A page's console errors and uncaught exceptions, as they happen. */
export interface PageProblems {
  /** Messages of console.error and of uncaught exceptions, in order. */
  readonly list: string[];
  /** Takes the problems seen so far (and forgets them). */
  take(): string[];
}

/** Starts recording what goes wrong in `page`. */
export function watchProblems(page: Page): PageProblems {
  const list: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error") list.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => list.push(`exception: ${e.message}`));
  return { list, take: () => list.splice(0) };
}

/** Saves a full-page screenshot named `name`.png. */
export async function screenshot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}
