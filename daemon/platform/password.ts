/**
 * Password hashes as htpasswd stores them (bcrypt, `$2y$`/`$2b$`/`$2a$`): verified with
 * Bun.password, which runs bcrypt natively off the JavaScript thread. The Node.js build
 * replaces this module with node/password.ts.
 */

/** True when `password` matches `hash`; throws on a hash it cannot read. */
export function verifyPassword(password: string, hash: string): Promise<boolean> {
  return Bun.password.verify(password, hash);
}
