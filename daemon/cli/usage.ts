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
  berth scrub --config FILE     re-hash every blob offline; quarantine the bad ones
  berth version                 print the version
  berth board detect [--config FILE] [--json]   identify this board and the profile "auto" picks
  berth discover [--write containerd|crio|podman] ...   find berth registries on the LAN
  berth keys create|list|revoke --url URL --user USER ...   manage API keys through a running registry
  berth cve REF | db import FILE | db status --url URL ...   vulnerability results and database of a running registry
  berth help [COMMAND]          this text, or a command's (also: berth COMMAND --help)`;

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
or prints every problem and exits 1.`,
  gc: `usage: berth gc [--dry-run] --config FILE

One retention and garbage-collection pass over the storage root of FILE, offline (the
daemon must not be running on that root). --dry-run prints what would be removed.`,
  scrub: `usage: berth scrub --config FILE

Re-hashes every blob under the storage root of FILE, offline, and moves blobs whose bytes
do not match their digest into quarantine.`,
  version: `usage: berth version

Prints berth's version.`,
  board: `usage: berth board detect [--config FILE] [--json]

Identifies this machine (model, CPU, memory, the storage root's device) and names the board
profile that [board] profile = "auto" would apply.`,
  discover: `usage: berth discover [--timeout SECONDS] [--interface NAME] [--json]
                      [--write containerd|crio|podman] [--instance ID] [--mirror-of REGISTRY]...
                      [--dir DIR]

Lists the berth registries that answer on the LAN (mDNS/DNS-SD). With --write, configures
this device's container runtime to use one of them (--instance, else the first found) as a
mirror of each --mirror-of registry (default docker.io). --dir: containerd's hosts
directory (default /etc/containerd/certs.d), or for crio/podman a root under which
etc/containers/... is written (default /). With TLS the registry's certificate must match
its advertised fingerprint, else nothing is written.`,
  keys: `usage: berth keys create --url URL --user USER --label LABEL [--expires DURATION]
                         [--scope GLOB:ACTIONS]... [--password-stdin] [--ca FILE] [--json]
       berth keys list   --url URL --user USER [--password-stdin] [--ca FILE] [--json]
       berth keys revoke --url URL --user USER ID [--password-stdin] [--ca FILE]

Manages API keys through the registry's admin API (/api/v1/keys), as USER (the password is
asked for on the terminal, or read from standard input with --password-stdin). create prints
the key once: it is not stored and cannot be shown again. --expires takes a duration such as
90d or 12h; --scope limits the key to repositories matching GLOB and to ACTIONS (pull, push,
delete, comma-separated), e.g. --scope 'factory/*:pull,push'; without --scope the key has its
owner's rights. list shows your keys (an admin's: every key), never their secrets. revoke
takes effect at once. --ca: the CA certificate to trust for an https URL.`,
  cve: `usage: berth cve REPO[:TAG|@DIGEST] --url URL [--user USER --password-stdin | --token-file FILE] [--ca FILE] [--json]
       berth cve db import FILE --url URL [credentials as above]
       berth cve db status --url URL [credentials as above]

Offline vulnerability scanning ([cve] enabled = true) through the registry's API
(/api/v1/cve). REF shows an image's vulnerabilities (severity, id, package, installed and
fixed-in versions) as far as you may pull it. db import streams FILE to the registry,
which verifies it and puts it in service (admins only): Grype's vulnerability.db (schema v6
or v5), or Grype's published archive of it (.tar.zst, .tar.gz; its checksum is verified).
db status shows the database in service and its build date. Credentials: a user whose
password is read from standard input, or the admin token file.`,
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
