/**
 * The trust store: public keys and CA certificates the operator installs, as PEM files in
 * one directory (`[trust] keys_dir`, default `<root>/.berth/trust`), one entry per file:
 *
 *   <keys_dir>/<name>       PEM: PUBLIC KEY blocks (cosign keys) and/or CERTIFICATE blocks (CAs)
 *
 * The directory is read at start, on SIGHUP ({@link TrustStore.reload}) and after every change
 * made through the API ({@link TrustStore.add}, {@link TrustStore.remove}); files the operator
 * copies in by hand take effect on the next reload. No watcher and no timer: an idle
 * registry does not touch the card. A file that does not parse is skipped and reported
 * (list, log); the others still count. Writes are atomic (temp file, fsync, rename).
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { parseTrustPem, type TrustSet, type TrustedCa, type TrustedKey, TrustMaterialError } from "./keys";

/** One installed entry as the API lists it. */
export interface TrustEntry {
  name: string;
  kind: "key" | "ca";
  id: string;
  /** Certificates: subject and validity. */
  subject?: string;
  notBefore?: string;
  notAfter?: string;
  /** Key type (ec, rsa, ed25519). */
  keyType?: string;
}

/** A file of the directory that could not be used. */
export interface TrustProblem {
  name: string;
  error: string;
}

/** Largest PEM file accepted (a chain of a few certificates is a few KiB). */
export const MAX_PEM_BYTES = 64 * 1024;
const MAX_FILES = 1000;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** A name that is not usable as a trust store entry, or a store full. */
export class TrustStoreError extends Error {
  constructor(message: string, readonly status: 400 | 404 | 409 | 507 = 400) {
    super(message);
  }
}

/** The installed keys and CAs, re-read on demand; listeners hear of every change. */
export class TrustStore {
  private set: TrustSet = { keys: [], cas: [] };
  private problems: TrustProblem[] = [];
  private entries = new Map<string, (TrustedKey | TrustedCa)[]>();
  private readonly listeners: (() => void)[] = [];
  /** Bumped on every change of the trust set (derived statuses compare it). */
  generation = 0;

  constructor(readonly dir: string) {}

  /** The current trust set. */
  current(): TrustSet {
    return this.set;
  }

  /** Calls `fn` after every change of the trust set. */
  onChange(fn: () => void): void {
    this.listeners.push(fn);
  }

  /** Re-reads the directory (creating it if needed); returns the files that could not be used. */
  reload(): TrustProblem[] {
    mkdirSync(this.dir, { recursive: true, mode: 0o755 });
    const entries = new Map<string, (TrustedKey | TrustedCa)[]>();
    const problems: TrustProblem[] = [];
    const names = readdirSync(this.dir).filter((n) => !n.startsWith(".")).sort().slice(0, MAX_FILES);
    for (const name of names) {
      try {
        const path = join(this.dir, name);
        const st = statSync(path);
        if (!st.isFile()) continue;
        if (st.size > MAX_PEM_BYTES) throw new TrustMaterialError(`"${name}" is ${st.size} bytes; at most ${MAX_PEM_BYTES} are read`);
        entries.set(name, parseTrustPem(readFileSync(path, "utf8"), name));
      } catch (err) {
        problems.push({ name, error: (err as Error).message });
      }
    }
    const before = fingerprint(this.entries);
    this.entries = entries;
    this.problems = problems;
    const all = [...entries.values()].flat();
    this.set = { keys: all.filter((x): x is TrustedKey => x.kind === "key"), cas: all.filter((x): x is TrustedCa => x.kind === "ca") };
    if (fingerprint(entries) !== before) {
      this.generation++;
      for (const fn of this.listeners) fn();
    }
    return problems;
  }

  /** Every entry, and the files that could not be used. */
  list(): { keys: TrustEntry[]; problems: TrustProblem[] } {
    const keys: TrustEntry[] = [];
    for (const [name, items] of this.entries) for (const item of items) keys.push(describe(name, item));
    return { keys, problems: this.problems };
  }

  /**
   * Installs `pem` under `name` (validated first: a private key or garbage is refused).
   * `replace` false: an existing name is a conflict (409). Returns what was installed.
   */
  add(name: string, pem: string, replace = false): TrustEntry[] {
    if (!NAME.test(name)) throw new TrustStoreError(`name "${name.slice(0, 80)}" must be 1-64 letters, digits, ".", "_" or "-", not starting with a dot`);
    if (Buffer.byteLength(pem) > MAX_PEM_BYTES) throw new TrustStoreError(`the PEM text is larger than ${MAX_PEM_BYTES} bytes`);
    let items: (TrustedKey | TrustedCa)[];
    try {
      items = parseTrustPem(pem, name);
    } catch (err) {
      throw new TrustStoreError((err as Error).message);
    }
    if (!replace && this.entries.has(name)) throw new TrustStoreError(`a trust store entry "${name}" exists; remove it first`, 409);
    if (!this.entries.has(name) && this.entries.size >= MAX_FILES) throw new TrustStoreError(`the trust store holds ${MAX_FILES} entries, the most it reads`, 507);
    mkdirSync(this.dir, { recursive: true, mode: 0o755 });
    const tmp = join(this.dir, `.${name}.${process.pid}.tmp`);
    const fd = openSync(tmp, "w", 0o644);
    try {
      writeSync(fd, items.map((i) => i.pem).join(""));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, join(this.dir, name));
    syncDir(this.dir);
    this.reload();
    return items.map((i) => describe(name, i));
  }

  /** Removes entry `name`; false when there is none. */
  remove(name: string): boolean {
    if (!NAME.test(name) || !this.entries.has(name)) return false;
    unlinkSync(join(this.dir, name));
    syncDir(this.dir);
    this.reload();
    return true;
  }
}

function describe(name: string, item: TrustedKey | TrustedCa): TrustEntry {
  if (item.kind === "key") return { name, kind: "key", id: item.id, keyType: item.key.asymmetricKeyType ?? "unknown" };
  return { name, kind: "ca", id: item.id, subject: item.cert.subject.split("\n").join(", "), notBefore: new Date(item.cert.validFrom).toISOString(), notAfter: new Date(item.cert.validTo).toISOString() };
}

function fingerprint(entries: Map<string, (TrustedKey | TrustedCa)[]>): string {
  return [...entries].map(([n, items]) => `${n}=${items.map((i) => i.id).join(",")}`).join(";");
}

function syncDir(dir: string): void {
  try {
    const fd = openSync(dir, "r");
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // some file systems cannot fsync a directory; the rename itself is still atomic
  }
}
