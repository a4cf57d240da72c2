/**
 * Builds berth for Node.js >= 18 (armv7 boards, where Bun does not run) as
 * dist/berth-linux-armv7.tar.gz:
 *
 *   berth/bin/berth                  launcher: exec node berth.mjs "$@"
 *   berth/lib/berth.mjs              the daemon and CLI, bundled into plain JavaScript
 *   berth/lib/uploadhash-thread.mjs  the upload hashing thread
 *   berth/lib/node-sqlite3-wasm.wasm SQLite (WebAssembly, file VFS)
 *   berth/lib/*.css, *.js            the API docs' assets
 *   berth/systemd/                   the same unit as the binaries, plus a drop-in for Node.js
 *
 *   bun scripts/build-node.ts [--out DIR] [--version V]
 *
 * The bundle is made by Bun.build with target "node"; four platform modules are swapped for
 * their Node.js counterparts under daemon/platform/node/ (serve, sqlite, password, semver).
 * Nothing of the bundle is architecture-specific, so the same tarball serves any Node.js
 * host; it is named for armv7 because that is the board it exists for.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync, chmodSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

const root = resolve(import.meta.dir, "..");
const args = process.argv.slice(2);
const flag = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const out = resolve(flag("--out") ?? join(root, "dist"));
const version = flag("--version") ?? defaultVersion();

const SWAPPED = ["serve", "sqlite", "password", "semver"];
const platformDir = join(root, "daemon", "platform");

const stage = join(out, "berth-linux-armv7.stage");
const pkg = join(stage, "berth");
rmSync(stage, { recursive: true, force: true });
mkdirSync(join(pkg, "lib"), { recursive: true });

// The web UI's bundle, embedded as a file beside the program (http/ui-embedded.ts).
if (spawnSync(process.execPath, [join(root, "ui", "build.ts")], { stdio: ["ignore", "ignore", "inherit"] }).status !== 0) process.exit(1);

const result = await Bun.build({
  entrypoints: [join(platformDir, "node", "entry.ts"), join(platformDir, "uploadhash-thread.ts")],
  outdir: join(pkg, "lib"),
  target: "node",
  format: "esm",
  splitting: true,
  minify: true,
  // Elysia imports file-type lazily, only to check uploaded files (berth takes none); its
  // regular expressions use the `v` flag, which Node.js 18 cannot parse.
  external: ["file-type"],
  naming: { entry: "[name].mjs", chunk: "chunk-[hash].mjs", asset: "[name]-[hash].[ext]" },
  define: {
    __BERTH_VERSION__: JSON.stringify(version),
    __BERTH_COMPILED__: "false",
    __BERTH_NODE__: "true",
  },
  plugins: [
    {
      name: "berth-node-platform",
      setup(build) {
        // "./serve", "../platform/serve", ... resolving to daemon/platform/<name>.ts -> node/<name>.ts
        build.onResolve({ filter: new RegExp(`(^|/)(${SWAPPED.join("|")})$`) }, (a) => {
          const target = resolve(dirname(a.importer), a.path);
          const name = SWAPPED.find((n) => target === join(platformDir, n));
          if (!name || a.importer.startsWith(join(platformDir, "node"))) return undefined;
          return { path: join(platformDir, "node", `${name}.ts`) };
        });
      },
    },
  ],
});
if (!result.success) {
  for (const log of result.logs) console.error(log);
  process.exit(1);
}
// Bun names the entry after its file: entry.mjs is the program.
const lib = join(pkg, "lib");
const { renameSync } = await import("node:fs");
renameSync(join(lib, "entry.mjs"), join(lib, "berth.mjs"));
copyFileSync(join(root, "node_modules", "node-sqlite3-wasm", "dist", "node-sqlite3-wasm.wasm"), join(lib, "node-sqlite3-wasm.wasm"));

mkdirSync(join(pkg, "bin"));
writeFileSync(
  join(pkg, "bin", "berth"),
  `#!/bin/sh
# berth on Node.js (>= 18): runs the bundled daemon and CLI with the node found on PATH,
# or with $BERTH_NODE when set.
# The V8 flags trade JIT and GC parallelism for memory, as a small board wants: no V8
# worker threads (--single-threaded, --v8-pool-size=0) and a 1 MiB young generation
# (measured: idle RSS ~80 MiB instead of ~130 MiB). $BERTH_NODE_FLAGS replaces them.
here=$(dirname "$(readlink -f "$0")")
exec "\${BERTH_NODE:-node}" \${BERTH_NODE_FLAGS---single-threaded --v8-pool-size=0 --max-semi-space-size=1} "$here/../lib/berth.mjs" "$@"
`,
);
chmodSync(join(pkg, "bin", "berth"), 0o755);

mkdirSync(join(pkg, "systemd", "berth.service.d"), { recursive: true });
cpSync(join(root, "systemd"), join(pkg, "systemd"), { recursive: true });
writeFileSync(
  join(pkg, "systemd", "berth.service.d", "node.conf"),
  `# berth on Node.js (armv7): Node.js cannot send the unix datagrams of sd_notify (the Bun
# build sends them through libc), so the service is started as Type=exec (started once node
# runs) without the watchdog; everything else in berth.service applies unchanged.
# Installed by ./install as /etc/systemd/system/berth.service.d/node.conf.
[Service]
Type=exec
WatchdogSec=0
`,
);
cpSync(join(root, "board"), join(pkg, "board"), { recursive: true });
copyFileSync(join(root, "README.md"), join(pkg, "README.md"));
copyFileSync(join(root, "scripts", "install"), join(pkg, "install"));
writeFileSync(join(pkg, "VERSION"), `${version}\n`);

const tarball = join(out, "berth-linux-armv7.tar.gz");
const tar = spawnSync("tar", ["-czf", tarball, "-C", stage, "berth"], { stdio: "inherit" });
if (tar.status !== 0) process.exit(1);
rmSync(stage, { recursive: true, force: true });
console.log(`${tarball}\t${readFileSync(tarball).length}`);
if (!existsSync(tarball)) process.exit(1);

function defaultVersion(): string {
  const base = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).version as string;
  const rev = spawnSync("git", ["rev-parse", "--short=7", "HEAD"], { cwd: root, encoding: "utf8" });
  return rev.status === 0 ? `${base}+g${rev.stdout.trim()}` : base;
}
