/**
 * Constants stamped in at build time. `scripts/build` passes them to `bun build --compile`
 * with `--define`; running from source (`bun daemon/main.ts`) they are undefined and the
 * development defaults apply. `typeof` on an undeclared global is safe, so no define is needed
 * for a source run.
 */
declare const __BERTH_VERSION__: string | undefined;
declare const __BERTH_COMPILED__: boolean | undefined;
declare const __BERTH_NODE__: boolean | undefined;

/** berth's version: stamped by `scripts/build` (package version + git revision), else "0.1.0-dev". */
export const VERSION: string = typeof __BERTH_VERSION__ === "string" ? __BERTH_VERSION__ : "0.1.0-dev";

/** True in the bundle for Node.js from `scripts/build-node` (armv7). */
export const NODE_BUILD: boolean = typeof __BERTH_NODE__ === "boolean" ? __BERTH_NODE__ : false;

/** True in a single-file binary from `scripts/build`, where modules live in Bun's embedded file system. */
export const COMPILED: boolean = typeof __BERTH_COMPILED__ === "boolean" ? __BERTH_COMPILED__ : false;
