/**
 * The command line's help texts, one per command, and the conventions every command
 * follows: `berth --help`, `berth -h`, `berth help [COMMAND]` and `berth COMMAND --help`
 * (or `-h`) print help on stdout and exit 0; a wrong argument or an unknown command prints
 * one error line, then the usage, on stderr and exits 2; a configuration problem exits 1.
 */

/** The overview `berth --help` prints. */
export const USAGE = `usage:
  berth serve [--config FILE]   run the registry (embedded default configuration without --config)
  berth verify FILE             check a configuration file and everything it names; report every problem
  berth gc [--dry-run] --config FILE   one retention + garbage-collection pass, offline; prints what it removes
  berth gc [--dry-run] --registry R    one GC pass on a running registry, followed with a progress bar
  berth scrub --config FILE | --registry R   re-hash every blob (offline, or on a running registry)
  berth version                 print the version
  berth board detect [--config FILE] [--json]   identify this board and the profile "auto" picks
  berth discover [--write containerd|crio|podman] ...   find berth registries on the LAN
  berth keys create|list|revoke [--url URL --user USER | --registry R] ...   manage API keys through a running registry
  berth trust keys add|list|rm [--url URL ... | --registry R]   manage the signature trust store through a running registry

client commands (a running registry: --registry ALIAS|URL, else $BERTH_REGISTRY, else the default login):
  berth login URL --user USER [--alias NAME]   store credentials (0600) for a registry alias
  berth logout [ALIAS]          forget an alias's credentials
  berth repos                   list repositories
  berth images [REPO]           list tags with digest, size and platforms
  berth inspect REF             show a manifest, its config, layers, labels
  berth rm REF [--yes]          delete a tag or manifest (asks first)
  berth search TEXT             search repositories and images (the search API)
  berth sync status|run NAME    upstreams up/down, last runs; queue a sync
  berth status                  version, readiness, memory, storage, upstreams
  berth bench URL [--compare URL2] ...   push/pull benchmark of any OCI registry
  berth bundle export|import|have ...   air-gap bundles (oci-archive files) out of and into a registry
  (--json for scripts; exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 denied, 5 unreachable, 6 unsupported)
  berth cve REF | db import FILE | db status [--url URL ... | --registry R]   vulnerability results and database of a running registry
  berth help [COMMAND]          this text, or a command's (also: berth COMMAND --help)`;

/** The commands of the client (cli/client.ts), loaded only when one is run. */
export const CLIENT_COMMANDS: readonly string[] = ["login", "logout", "repos", "images", "inspect", "rm", "search", "sync", "status", "bench", "bundle"];

/** What every client command's help ends with. */
const CLIENT_COMMON = `
Common options: --registry ALIAS|URL (-r; default: $BERTH_REGISTRY, else the default
alias of berth login), --ca FILE (CA certificate for https), --timeout SECONDS (default 30),
--json (machine-readable output on stdout).
Exit codes: 0 ok, 1 other failure, 2 usage, 3 not found, 4 denied (401/403),
5 unreachable (connection, DNS, TLS, timeout), 6 unsupported (the registry lacks the API).`;

/** What the help of keys, trust and cve ends with: the stored login, the old --url flags, exit codes. */
const ADMIN_COMMON = `
Without --url, the registry and its credentials come from berth login's stored login
(--registry ALIAS|URL (-r), else $BERTH_REGISTRY, else the default alias); --user,
--password-stdin, --token-file (where taken) and --ca override what it stored.
--timeout SECONDS: how long to wait for an answer (default 30).
Exit codes: 0 ok, 1 other failure, 2 usage, 3 not found, 4 denied (401/403),
5 unreachable, 6 unsupported; with --url every failure but a usage error exits 1.`;

/** Help of each command, by name. */
export const COMMAND_HELP: Readonly<Record<string, string>> = {
  serve: `usage: berth serve [--config FILE]

Runs the registry. Without --config it runs on the embedded default configuration
(127.0.0.1:5000, storage under ./data). The configuration and every file and directory it
names are checked first (as \`berth verify\` does); a problem is reported with its key and
the exit code is 1. SIGHUP reloads the log settings; SIGTERM stops after requests in flight.`,
  verify: `usage: berth verify FILE

Checks a configuration file: its syntax (with line and column), every key against the
schema, and every file and directory it names (TLS certificate and key, the storage root,
the admin token file, sync credentials and certificates). Prints "FILE: valid" and exits 0,
or prints every problem and exits 1. A deprecated key (such as [scheduler] profile, now
[scheduler] io_profile) still works and is reported as a warning on stderr.`,
  gc: `usage: berth gc [--dry-run] --config FILE
       berth gc [--dry-run] --registry ALIAS|URL [--json] [--ca FILE] [--timeout SECONDS]

With --config: one retention and garbage-collection pass over the storage root of FILE,
offline (the daemon must not be running on that root). With --registry: one GC pass on the
running registry through its admin API, run as a task and followed (a progress line on a
terminal, nothing in a pipe); --json prints the finished task. --dry-run reports only.
--config and --registry exclude each other.
Exit codes (--registry): 0 ok, 1 failure, 2 usage, 4 denied, 5 unreachable.`,
  scrub: `usage: berth scrub --config FILE
       berth scrub --registry ALIAS|URL [--json] [--ca FILE] [--timeout SECONDS]

Re-hashes every blob and moves blobs whose bytes do not match their digest into
quarantine: with --config offline on the storage root of FILE; with --registry on the
running registry, as a task followed with a progress bar (blobs, bytes, ETA) on a terminal.
Exit codes (--registry): 0 ok, 1 failure, 2 usage, 4 denied, 5 unreachable.`,
  login: `usage: berth login URL|ALIAS --user USER [--alias NAME] [--password-stdin] [--ca FILE] [--default]
       berth login URL|ALIAS --token-stdin [--alias NAME] [--ca FILE] [--default]

Checks credentials against the registry (the Docker token flow when it issues tokens) and
stores them under ALIAS (default: host:port of URL) in $XDG_CONFIG_HOME/berth/credentials.json
(~/.config/berth/…, or $BERTH_CREDENTIALS), mode 0600; a file readable by others is refused.
The password (or an API key) is asked for without echo, or read from standard input with
--password-stdin; --token-stdin stores the admin token of [http] admin_token_file instead.
The first alias, or one given --default, is used when a command names no --registry.
A bare host:port is https, except loopback (http). Refused credentials are not stored (exit 4).`,
  logout: `usage: berth logout [ALIAS]

Removes ALIAS (default: the default alias) and its credentials. Exit 3 when unknown.`,
  repos: `usage: berth repos [--registry R] [--json]

Lists the repositories the credentials may see (/v2/_catalog, every page).
${CLIENT_COMMON}`,
  images: `usage: berth images [REPO] [--registry R] [--json]

Lists the tags of REPO (or of every repository) with digest, total size and platforms.
${CLIENT_COMMON}`,
  inspect: `usage: berth inspect REF [--registry R] [--json]

Shows a manifest (REF is REPO[:TAG] or REPO@DIGEST): digest, media type, size, platforms
of an index, the image config (platform, created, labels, history) and layers.
${CLIENT_COMMON}`,
  rm: `usage: berth rm REF [--yes] [--registry R] [--json]

Deletes a tag (REPO:TAG) or a manifest (REPO@DIGEST). Asks for confirmation on the
terminal; without a terminal --yes is required (else exit 2, nothing deleted).
${CLIENT_COMMON}`,
  search: `usage: berth search TEXT [--registry R] [--json]

Searches repositories and images (GlobalSearch of the zot-compatible search API,
/v2/_zot/ext/search). A registry without that API exits 6 with a message saying so.
${CLIENT_COMMON}`,
  sync: `usage: berth sync status [--registry R] [--json]
       berth sync run NAME [--wait] [--registry R] [--json]

status: the upstreams ([[sync.registries]]) with their state and last run, fetches in
flight and pins. run: queues a full sync of upstream NAME; --wait follows it as a task
until it ends (exit 1 if it failed). Needs an admin's credentials. Exit 3: no such upstream.
${CLIENT_COMMON}`,
  bench: `usage: berth bench [URL|ALIAS] [--compare URL|ALIAS] [--workload push|pull|mixed]
                   [--count N] [--size SIZE] [--concurrency N] [--images N] [--push-ratio R]
                   [--repo NAME] [--seed N] [--json] [--ca FILE] [--timeout SECONDS]

Benchmarks any OCI registry through the distribution API (berth, zot, distribution…).
Each operation pushes or pulls one image: a layer of SIZE bytes (default 1MiB; 4KiB, 64MiB…)
and a small config. push: COUNT new images (default 20); pull: pushes --images N first (not
measured; default min(COUNT, 8)) and pulls them COUNT times in turn, checking every digest;
mixed: pulls with a share R of pushes (default 0.2). CONCURRENCY workers (default 4).
Prints per operation the count, errors, latency p50/p90/p99/max and throughput; --compare
runs the same workload against a second registry and prints both side by side with B/A
ratios. Memory stays bounded: layers are generated and streamed in 256 KiB chunks. Images go
to --repo (default berth-bench) with tags bench-SEED-N; nothing is deleted afterwards.
Exit 1 when an operation failed.
${CLIENT_COMMON}`,
  bundle: `usage: berth bundle export -o FILE (REPO[:TAG]|REPO@DIGEST ... | --all) [--platform OS/ARCH[/VARIANT]]
                          [--have INVENTORY] [--no-signatures]
       berth bundle import FILE [--dry-run] [--repo NAME] [--rate SIZE]
       berth bundle import FILE --config BERTH_TOML [--dry-run] [--repo NAME]
       berth bundle import --on-device PATH [--dry-run] [--repo NAME]
       berth bundle have [REPO ...] > INVENTORY

Air-gap bundles: one oci-archive file (an OCI image layout in a tar, readable by
\`skopeo copy oci-archive:FILE:REPO:TAG ...\`) carried on a stick to an offline registry.
export: the references (REPO alone: every tag) with their cosign tags and referrers (SBOMs,
signatures), each blob once; index.json names every tagged manifest "REPO:TAG"
(org.opencontainers.image.ref.name). --platform narrows an index to one platform's
manifest. --have INVENTORY (written on the target by \`berth bundle have\`) leaves out the
blobs the target already holds: an incremental bundle, smaller, for that target only.
import: verifies the archive and every manifest first, checks push rights on every
repository, then writes image by image (blobs, then manifests, the tag last), skipping what
the registry holds: a rerun after an interruption resumes, a second run changes nothing.
--dry-run lists what would change. --repo names the repository for entries that name none
(an archive made with \`skopeo copy ... oci-archive:FILE:TAG\`). --rate caps the upload rate.
With --config: offline, on the storage root of a stopped daemon (its lock refuses a running
one). With --on-device: the registry imports PATH from its own disk (a stick mounted under
[bundle] import_dirs) through its admin API, under its IO budget, followed as a task.
${CLIENT_COMMON}`,
  status: `usage: berth status [--registry R] [--json]

The running registry at a glance: version, readiness, uptime, memory, storage, upstreams.
Needs an admin's credentials (or the admin token: berth login --token-stdin).
${CLIENT_COMMON}`,
  version: `usage: berth version

Prints berth's version.`,
  board: `usage: berth board detect [--config FILE] [--json]

Identifies this machine (model, CPU, memory, the storage root's device) and names the board
profile that [board] profile = "auto" would apply. (The IO budget's rates are a separate
key, [scheduler] io_profile, which board profiles set.)`,
  discover: `usage: berth discover [--timeout SECONDS] [--interface NAME] [--json]
                      [--write containerd|crio|podman] [--instance ID] [--mirror-of REGISTRY]...
                      [--dir DIR]

Lists the berth registries that answer on the LAN (mDNS/DNS-SD). With --write, configures
this device's container runtime to use one of them (--instance, else the first found) as a
mirror of each --mirror-of registry (default docker.io). --dir: containerd's hosts
directory (default /etc/containerd/certs.d), or for crio/podman a root under which
etc/containers/... is written (default /). With TLS the registry's certificate must match
its advertised fingerprint, else nothing is written.`,
  keys: `usage: berth keys create [--url URL --user USER | --registry ALIAS|URL] --label LABEL
                         [--expires DURATION] [--scope GLOB:ACTIONS]... [--password-stdin] [--ca FILE] [--json]
       berth keys list   [--url URL --user USER | --registry ALIAS|URL] [--password-stdin] [--ca FILE] [--json]
       berth keys revoke [--url URL --user USER | --registry ALIAS|URL] ID [--password-stdin] [--ca FILE]
       (each also takes [--timeout SECONDS])

Manages API keys through the registry's admin API (/api/v1/keys), as USER (the password is
asked for on the terminal, or read from standard input with --password-stdin). Without --url,
the registry and the user come from berth login's stored credentials (--registry, else
$BERTH_REGISTRY, else the default), and so does the password of that user. create prints
the key once: it is not stored and cannot be shown again. --expires takes a duration such as
90d or 12h; --scope limits the key to repositories matching GLOB and to ACTIONS (pull, push,
delete, comma-separated), e.g. --scope 'factory/*:pull,push'; without --scope the key has its
owner's rights. list shows your keys (an admin's: every key), never their secrets. revoke
takes effect at once. --ca: the CA certificate to trust for an https URL.
${ADMIN_COMMON}`,
  trust: `usage: berth trust keys add  [--url URL (--user USER | --token-file FILE) | --registry ALIAS|URL] NAME FILE [--replace]
       berth trust keys list [--url URL (--user USER | --token-file FILE) | --registry ALIAS|URL] [--json]
       berth trust keys rm   [--url URL (--user USER | --token-file FILE) | --registry ALIAS|URL] NAME
       (each also takes [--password-stdin] [--ca FILE] [--timeout SECONDS])

Manages the trust store signatures are verified against ([trust] keys_dir) through the
registry's admin API (/api/v1/trust/keys), as an admin. FILE is PEM: public keys (cosign)
and/or CA certificates (certificate-based cosign signatures, notation); NAME is the entry's
file name in keys_dir. Every signature status is recomputed at once. --user: the password
is asked for on the terminal or read with --password-stdin; --token-file: the admin token
([http] admin_token_file) when [auth] is off. --ca: the CA certificate for an https URL.
${ADMIN_COMMON}`,
  cve: `usage: berth cve REPO[:TAG|@DIGEST] [--url URL [--user USER | --token-file FILE] | --registry ALIAS|URL] [--json]
       berth cve db import FILE [registry and credentials as above]
       berth cve db status [registry and credentials as above]
       (each also takes [--password-stdin] [--ca FILE] [--timeout SECONDS])

Offline vulnerability scanning ([cve] enabled = true) through the registry's API
(/api/v1/cve). REF shows an image's vulnerabilities (severity, id, package, installed and
fixed-in versions) as far as you may pull it. db import streams FILE to the registry,
which verifies it and puts it in service (admins only): Grype's vulnerability.db (schema v6
or v5), or Grype's published archive of it (.tar.zst, .tar.gz; its checksum is verified).
db status shows the database in service and its build date. With --url: anonymous, or
--user (the password asked for on the terminal, or read with --password-stdin), or
--token-file (the admin token, [http] admin_token_file). An import may take up to an
hour unless --timeout says otherwise.
${ADMIN_COMMON}`,
  help: `usage: berth help [COMMAND]

Prints the overview, or the help of COMMAND.`,
};

/** True when `arg` asks for help. */
export function isHelpFlag(arg: string | undefined): boolean {
  return arg === "--help" || arg === "-h";
}

/** The help text for `command` (the overview when undefined), or undefined for an unknown one. */
export function helpFor(command: string | undefined): string | undefined {
  return command === undefined ? USAGE : COMMAND_HELP[command];
}

/** Prints a usage error: one line saying what is wrong, then `usage`, on stderr; returns exit code 2. */
export function usageError(message: string, usage: string): number {
  console.error(`berth: ${message}\n${usage}`);
  return 2;
}
