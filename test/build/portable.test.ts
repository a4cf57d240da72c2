/**
 * The Node.js build (armv7) runs every module of daemon/ except the runtime-specific ones
 * under daemon/platform/, which it swaps for daemon/platform/node/. So no code outside
 * platform/ may call Bun's own API (the `Bun` global, `bun:` modules): such a call works in
 * every Bun test and fails only on the board. This check reads the sources.
 */
import { expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, resolve } from "node:path";

const DAEMON = resolve(import.meta.dir, "../../daemon");

/** Files that only the Bun builds load (each says why in its own header). */
const BUN_ONLY = new Set([
  "http/ui-embedded.ts", // imported only by compiled binaries and the Node.js bundle, as a file path
]);

function* sources(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* sources(path);
    else if (name.endsWith(".ts") && !name.endsWith(".d.ts")) yield path;
  }
}

/** The code of a file with comments and string contents blanked (so prose may name Bun). */
function code(text: string): string {
  return text
    .replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, ""))
    .replace(/\/\/.*$/gm, "")
    .replace(/"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'/g, (s) => (/^["']bun:/.test(s) ? s : '""'));
}

test("no module outside daemon/platform/ uses Bun's own API", () => {
  const offenders: string[] = [];
  for (const file of sources(DAEMON)) {
    const rel = relative(DAEMON, file);
    if (rel.startsWith("platform/") || BUN_ONLY.has(rel)) continue;
    const lines = code(readFileSync(file, "utf8")).split("\n");
    lines.forEach((line, i) => {
      if (/\bBun\.[A-Za-z]|["']bun:[a-z]+["']/.test(line)) offenders.push(`daemon/${rel}:${i + 1}: ${line.trim()}`);
    });
  }
  expect(offenders).toEqual([]);
});
