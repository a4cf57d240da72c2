/**
 * A linear pre-scan of JSON text, run before `JSON.parse` on anything a client or an
 * upstream sends as a manifest. It refuses what `JSON.parse` would accept but berth must
 * not: nesting deeper than a small limit (hostile `[[[[…` makes the parser's work and
 * memory grow far beyond the body's size, and manifests are shallow) and an object with
 * the same key twice (the image-spec requires unambiguous JSON; `JSON.parse` silently keeps
 * the last value, another reader may keep the first). One pass, no recursion: the state is
 * a stack of at most `maxDepth` frames. Malformed JSON is left for `JSON.parse` to report.
 */
import { clip } from "./digest";

/** Deepest nesting of objects and arrays accepted in a manifest (real ones reach about 5). */
export const MAX_JSON_DEPTH = 64;

/**
 * Returns why `text` must be refused (too deep, a duplicate key), or undefined. Keys are
 * compared after unescaping, so `"a"` and `"\u0061"` are the same key, and with lone
 * surrogates read as U+FFFD, as decoders in other languages read them.
 */
export function jsonProblem(text: string, maxDepth = MAX_JSON_DEPTH): string | undefined {
  // one frame per open container: the keys seen so far for an object, null for an array
  const stack: (Set<string> | null)[] = [];
  let expectKey = false;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (stack.length >= maxDepth) return `the JSON nests deeper than ${maxDepth} levels`;
      stack.push(c === 0x7b ? new Set() : null);
      expectKey = c === 0x7b;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
      expectKey = false;
    } else if (c === 0x2c /* , */) {
      expectKey = stack.length > 0 && stack[stack.length - 1] !== null;
    } else if (c === 0x22 /* " */) {
      let j = i + 1;
      let escaped = false;
      for (; j < n; j++) {
        const d = text.charCodeAt(j);
        if (d === 0x5c /* \ */) {
          escaped = true;
          j++;
        } else if (d === 0x22) break;
      }
      if (expectKey) {
        let key = text.slice(i + 1, j);
        if (escaped) {
          try {
            // a lone surrogate (`\ud800`) reads as U+FFFD in other decoders (Go's): compare it so
            key = (JSON.parse(text.slice(i, j + 1)) as string).toWellFormed();
          } catch {
            return undefined; // a broken string: JSON.parse reports it
          }
        }
        const keys = stack[stack.length - 1]!;
        if (keys.has(key)) return `the key "${clip(key, 80)}" appears twice in one object`;
        keys.add(key);
        expectKey = false;
      }
      i = j;
    }
  }
  return undefined;
}

/**
 * The nesting check of {@link jsonProblem}, fed the raw bytes as they arrive, so a body of
 * hostile nesting is refused after its first few dozen bytes instead of once it is whole.
 * Works on UTF-8 bytes across chunk boundaries (the bytes it looks at are ASCII, which
 * never occur inside a multi-byte sequence).
 */
export class NestingScanner {
  private depth = 0;
  private inString = false;
  private escaped = false;

  constructor(private readonly maxDepth = MAX_JSON_DEPTH) {}

  /** Scans the next bytes; returns the problem once the nesting is too deep. */
  feed(bytes: Uint8Array): string | undefined {
    for (let i = 0; i < bytes.length; i++) {
      const c = bytes[i]!;
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === 0x5c) this.escaped = true;
        else if (c === 0x22) this.inString = false;
      } else if (c === 0x22) this.inString = true;
      else if (c === 0x7b || c === 0x5b) {
        if (++this.depth > this.maxDepth) return `the JSON nests deeper than ${this.maxDepth} levels`;
      } else if (c === 0x7d || c === 0x5d) this.depth = Math.max(0, this.depth - 1);
    }
    return undefined;
  }
}
