/**
 * The chain of password sources: htpasswd first, then whatever other parts register (API
 * keys, LDAP). The first source that knows the user decides; a user no source knows is
 * refused like a wrong password (the client cannot tell the two apart).
 */
import type { PasswordSource, Verdict } from "./identity";

/**
 * An optional ability of a {@link PasswordSource}: answering at once, without IO or
 * hashing, when it can (a credential verified a moment ago, a user it does not have).
 * `undefined` means "ask verify()".
 */
export interface CachedPasswordSource extends PasswordSource {
  cached(user: string, password: string): Verdict | undefined;
}

function hasCache(source: PasswordSource): source is CachedPasswordSource {
  return typeof (source as Partial<CachedPasswordSource>).cached === "function";
}

/** Longest user name or password looked at; longer ones are refused without asking a source. */
export const MAX_CREDENTIAL_CHARS = 1024;

/** An ordered list of {@link PasswordSource}s. */
export class AuthChain {
  private readonly sources: PasswordSource[] = [];

  constructor(sources: readonly PasswordSource[] = []) {
    this.sources.push(...sources);
  }

  /** Adds a source at the end (or, with `first`, before the others). */
  register(source: PasswordSource, first = false): void {
    if (first) this.sources.unshift(source);
    else this.sources.push(source);
  }

  /** The registered source called `name` (e.g. the API key store), if any. */
  source(name: PasswordSource["name"]): PasswordSource | undefined {
    return this.sources.find((s) => s.name === name);
  }

  /** Number of sources registered. */
  get size(): number {
    return this.sources.length;
  }

  /**
   * The answer without waiting, when every source asked can give it at once (a recently
   * verified credential): the hot path of clients sending Basic credentials on every
   * request. `undefined` means {@link verify} must be called.
   */
  cached(user: string, password: string): Verdict | undefined {
    if (user.length === 0 || user.length > MAX_CREDENTIAL_CHARS || password.length > MAX_CREDENTIAL_CHARS) return undefined;
    for (const source of this.sources) {
      if (!hasCache(source)) return undefined;
      let verdict: Verdict | undefined;
      try {
        verdict = source.cached(user, password);
      } catch {
        return undefined;
      }
      if (verdict === undefined) return undefined;
      if (verdict.kind !== "unknown") return verdict;
    }
    return undefined;
  }

  /**
   * Checks a user name and password. `ok` from the first source that accepts; `denied`
   * (or `unavailable`) from the first source that knows the user and refuses (or cannot
   * decide); `denied` when no source knows the user. Never throws: a source that throws
   * counts as unavailable.
   */
  async verify(user: string, password: string, signal?: AbortSignal): Promise<Verdict> {
    if (user.length === 0 || user.length > MAX_CREDENTIAL_CHARS || password.length > MAX_CREDENTIAL_CHARS) {
      return { kind: "denied", reason: "user name empty or credentials too long" };
    }
    for (const source of this.sources) {
      let verdict: Verdict;
      try {
        verdict = await source.verify(user, password, signal);
      } catch (err) {
        verdict = { kind: "unavailable", reason: `${source.name} failed: ${(err as Error).message}` };
      }
      if (verdict.kind !== "unknown") return verdict;
    }
    return { kind: "denied", reason: `no source knows user "${user.slice(0, 64)}"` };
  }
}
