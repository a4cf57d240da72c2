/**
 * Builds the web UI with Bun.build: one minified script and one stylesheet from ui/src.
 * The daemon calls {@link buildUi} on the first UI request of a source run; scripts/build
 * runs this file before `bun build --compile`, which embeds the result:
 *
 *   bun ui/build.ts [OUT]     writes OUT (default ui/dist/assets.berthui) and prints sizes
 *
 * The output is one JSON file ({@link UiBundle}), so the daemon embeds a single file whose
 * name never changes; the content-hashed URLs are derived from the content when served.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { gzipSync } from "node:zlib";

/** The built UI: the script and the stylesheet, as text, and (written files only) their gzip forms in base64. */
export interface UiBundle {
  js: string;
  css: string;
  jsGzip?: string;
  cssGzip?: string;
}

/** Where scripts/build leaves the bundle for `bun build --compile` to embed. */
export const DEFAULT_OUT = join(import.meta.dir, "dist", "assets.berthui");

/** Bundles ui/src/main.ts (and the CSS it imports), minified, for browsers. */
export async function buildUi(): Promise<UiBundle> {
  const result = await Bun.build({
    entrypoints: [join(import.meta.dir, "src", "main.ts")],
    target: "browser",
    minify: true,
    sourcemap: "none",
    format: "esm",
  });
  if (!result.success) throw new Error(`The web UI did not build: ${result.logs.map(String).join("; ")}`);
  let js = "";
  let css = "";
  for (const out of result.outputs) {
    if (out.path.endsWith(".js")) js += await out.text();
    else if (out.path.endsWith(".css")) css += await out.text();
  }
  if (!js) throw new Error("The web UI build produced no script");
  return { js, css };
}

if (import.meta.main) {
  const out = process.argv[2] ?? DEFAULT_OUT;
  const bundle = await buildUi();
  mkdirSync(dirname(out), { recursive: true });
  // precompressed here, so a compiled daemon never runs zlib for the UI
  const packed: UiBundle = { ...bundle, jsGzip: gzipSync(bundle.js, { level: 9 }).toString("base64"), cssGzip: gzipSync(bundle.css, { level: 9 }).toString("base64") };
  writeFileSync(out, JSON.stringify(packed));
  const size = (s: string) => `${Buffer.byteLength(s)} B raw, ${gzipSync(s, { level: 9 }).length} B gzipped`;
  console.error(`ui: script ${size(bundle.js)}; stylesheet ${size(bundle.css)} -> ${out}`);
}
