/**
 * The htpasswd source (auth/htpasswd.ts): bcrypt entries only (other kinds refused naming
 * the line), a file open to group or others refused, re-reading on change (a broken file
 * keeps the last good users), and the verified-credential cache keyed on the stored hash.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HtpasswdSource, parseHtpasswd } from "../../daemon/auth/htpasswd";
import { AuthChain } from "../../daemon/auth/chain";
import { VerifiedCache } from "../../daemon/auth/cache";
import { createLogger } from "../../daemon/log";
import { bcrypt, writeHtpasswd } from "../helpers/auth";

let dir: string;
let logs: string[];
const log = createLogger("info", "json", (line) => logs.push(line));
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "berth-htpasswd-"));
  logs = [];
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A clock the test moves. */
function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

describe("parsing", () => {
  test("bcrypt in $2y$, $2a$ and $2b$ forms is accepted; comments and blank lines are skipped", async () => {
    const h = await bcrypt("pw");
    const text = `# users\n\nalice:${h}\nbob:${h.replace("$2y$", "$2a$")}\r\ncarol:${h.replace("$2y$", "$2b$")}\n`;
    expect([...parseHtpasswd(text, "/f").keys()]).toEqual(["alice", "bob", "carol"]);
  });
  test.each([
    ["bob:$apr1$abc$0123456789abcdefghijkl", "line 2: user \"bob\" has an MD5 ($apr1$) hash"],
    ["bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "line 2: user \"bob\" has a SHA-1 ({SHA}) hash"],
    ["bob:$6$salt$hash", "line 2: user \"bob\" has a SHA-crypt hash"],
    ["bob:plaintext", "line 2: user \"bob\" has a crypt or plain-text hash"],
    ["bob", "line 2: expected \"user:hash\""],
    ["bob:$2y$05$short", "line 2: user \"bob\" has a malformed bcrypt hash"],
  ])("%s is refused naming the line and the fix", async (line, message) => {
    const text = `alice:${await bcrypt("pw")}\n${line}\n`;
    expect(() => parseHtpasswd(text, "/etc/berth/htpasswd")).toThrow(message);
    if (line.includes(":")) expect(() => parseHtpasswd(text, "/etc/berth/htpasswd")).toThrow('run htpasswd -B "/etc/berth/htpasswd" bob');
  });
  test("a user twice is refused", async () => {
    const h = await bcrypt("pw");
    expect(() => parseHtpasswd(`a:${h}\na:${h}\n`, "/f")).toThrow('line 2: user "a" appears twice');
  });
});

describe("the file", () => {
  test("a file readable by group or others is refused with the chmod to run", async () => {
    const path = await writeHtpasswd(dir, { alice: "pw" });
    chmodSync(path, 0o644);
    expect(() => new HtpasswdSource(path, log)).toThrow(`run chmod 600 "${path}"`);
    chmodSync(path, 0o640);
    expect(() => new HtpasswdSource(path, log)).toThrow("mode 640");
    chmodSync(path, 0o600);
    expect(new HtpasswdSource(path, log).size).toBe(1);
  });
  test("a missing file is refused", () => {
    expect(() => new HtpasswdSource(join(dir, "nope"), log)).toThrow("ENOENT");
  });
});

describe("verification", () => {
  test("right, wrong and unknown", async () => {
    const src = new HtpasswdSource(await writeHtpasswd(dir, { alice: "s3cret" }), log, { groups: { ops: ["alice"] } });
    expect(await src.verify("alice", "s3cret")).toEqual({ kind: "ok", principal: { name: "alice", groups: ["ops"], source: "htpasswd" } });
    expect((await src.verify("alice", "wrong")).kind).toBe("denied");
    expect((await src.verify("mallory", "s3cret")).kind).toBe("unknown");
  });

  test("bcrypt runs once per credential: the cached answer is used until the stored hash changes", async () => {
    const path = await writeHtpasswd(dir, { alice: "one" });
    const c = clock();
    const src = new HtpasswdSource(path, log, { now: c.now });
    const real = Bun.password.verify;
    let calls = 0;
    Bun.password.verify = ((...args: Parameters<typeof real>) => {
      calls++;
      return real(...args);
    }) as typeof real;
    try {
      for (let i = 0; i < 5; i++) expect((await src.verify("alice", "one")).kind).toBe("ok");
      expect(calls).toBe(1);
      // a wrong password is never cached as good
      expect((await src.verify("alice", "two")).kind).toBe("denied");
      expect((await src.verify("alice", "two")).kind).toBe("denied");
      expect(calls).toBe(3);
      // the password changes: the old one fails at the first check of the file, though cached
      await writeHtpasswd(dir, { alice: "two" });
      utimesSync(path, new Date(), new Date(Date.now() + 5000));
      c.advance(1000);
      expect((await src.verify("alice", "one")).kind).toBe("denied");
      expect((await src.verify("alice", "two")).kind).toBe("ok");
    } finally {
      Bun.password.verify = real;
    }
  });

  test("the cache expires and is bounded", () => {
    const c = clock();
    const cache = new VerifiedCache(2, 1000, c.now);
    const k = (u: string) => VerifiedCache.key(u, "pw", "$2y$hash");
    cache.add(k("a"));
    cache.add(k("b"));
    cache.add(k("c"));
    expect(cache.size).toBe(2);
    expect(cache.has(k("a"))).toBe(false);
    expect(cache.has(k("c"))).toBe(true);
    c.advance(1000);
    expect(cache.has(k("c"))).toBe(false);
    // the key depends on every part, and holds no password
    expect(VerifiedCache.key("a", "pw", "h1")).not.toBe(VerifiedCache.key("a", "pw", "h2"));
    expect(VerifiedCache.key("a", "pw", "h1")).not.toContain("pw");
  });

  test("a removed user is refused at the next check of the file", async () => {
    const path = await writeHtpasswd(dir, { alice: "pw", bob: "pw" });
    const c = clock();
    const src = new HtpasswdSource(path, log, { now: c.now });
    expect((await src.verify("bob", "pw")).kind).toBe("ok");
    await writeHtpasswd(dir, { alice: "pw" });
    utimesSync(path, new Date(), new Date(Date.now() + 5000));
    // within the second, the file is not looked at again
    expect((await src.verify("bob", "pw")).kind).toBe("ok");
    c.advance(1000);
    expect((await src.verify("bob", "pw")).kind).toBe("unknown");
  });

  test("a broken or loosened file keeps the last good users, and says why", async () => {
    const path = await writeHtpasswd(dir, { alice: "pw" });
    const c = clock();
    const src = new HtpasswdSource(path, log, { now: c.now });
    writeFileSync(path, "alice:$apr1$x$y\n", { mode: 0o600 });
    utimesSync(path, new Date(), new Date(Date.now() + 5000));
    c.advance(1000);
    expect((await src.verify("alice", "pw")).kind).toBe("ok");
    expect(logs.join("\n")).toContain("htpasswd file is broken; keeping the last good users");
    expect(logs.join("\n")).toContain("MD5");
    await writeHtpasswd(dir, { alice: "new" });
    chmodSync(path, 0o644);
    utimesSync(path, new Date(), new Date(Date.now() + 9000));
    c.advance(1000);
    expect((await src.verify("alice", "pw")).kind).toBe("ok");
    expect(logs.join("\n")).toContain("chmod 600");
    rmSync(path);
    c.advance(1000);
    expect((await src.verify("alice", "pw")).kind).toBe("ok");
    expect(logs.join("\n")).toContain("htpasswd file cannot be read");
  });
});

describe("the chain", () => {
  test("the first source that knows the user decides; nobody knows: denied; a throwing source is unavailable", async () => {
    const src = new HtpasswdSource(await writeHtpasswd(dir, { alice: "pw" }), log);
    const keys = { name: "apikey" as const, verify: async (u: string, p: string) => (u === "alice" || p !== "key-1" ? { kind: "unknown" as const } : { kind: "ok" as const, principal: { name: u, groups: [], source: "apikey" as const } }) };
    const chain = new AuthChain([src]);
    chain.register(keys);
    expect((await chain.verify("alice", "pw")).kind).toBe("ok");
    expect((await chain.verify("alice", "key-1")).kind).toBe("denied"); // htpasswd knows alice: its answer stands
    expect((await chain.verify("ci", "key-1")).kind).toBe("ok");
    expect((await chain.verify("ci", "other")).kind).toBe("denied");
    expect((await chain.verify("", "pw")).kind).toBe("denied");
    expect((await chain.verify("a".repeat(2000), "pw")).kind).toBe("denied");
    chain.register({ name: "ldap", verify: async () => { throw new Error("socket closed"); } }, true);
    expect(await chain.verify("alice", "pw")).toEqual({ kind: "unavailable", reason: "ldap failed: socket closed" });
  });
});
