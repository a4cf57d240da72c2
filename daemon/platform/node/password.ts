/**
 * Password hashes for the Node.js build: bcrypt in JavaScript (bcryptjs), as Node.js has no
 * bcrypt of its own. It runs on the event loop (bcryptjs yields between rounds in its async
 * form), so a verify costs the cost factor's time; the credential cache in front of it
 * (auth/cache.ts) keeps that to once per credential and cache period.
 */
import bcrypt from "bcryptjs";

/** True when `password` matches `hash`; throws on a hash it cannot read. */
export async function verifyPassword(password: string, hash: string): Promise<boolean> {
  if (!/^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/.test(hash)) throw new Error("Unsupported password hash (berth reads bcrypt hashes: $2y$, $2b$, $2a$)");
  // bcryptjs knows the `$2y$` spelling as `$2b$`: the same algorithm (PHP's name for the fixed one).
  return bcrypt.compare(password, hash.startsWith("$2y$") ? `$2b$${hash.slice(4)}` : hash);
}
