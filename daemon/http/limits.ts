/**
 * The `[limits]` section turned into the front's guards: the request rate limiter and the
 * failed-login lockout. Each is created only when one of its rules is on, so a default
 * configuration loads and pays for nothing.
 */
import { LoginLockout, type LockoutOptions } from "../auth/lockout";
import type { Config } from "../config/schema";
import { RateLimiter, type RateLimitOptions } from "./ratelimit";

/** The rate limiter's options from `[limits]`. */
export function rateLimitOptions(config: Config): RateLimitOptions {
  const l = config.limits;
  return {
    read: { perSecond: l.reads_per_second, burst: l.read_burst },
    write: { perSecond: l.writes_per_second, burst: l.write_burst },
    maxClients: l.clients,
  };
}

/** `{ rateLimiter }` for the front when `[limits]` sets a rate, else `{}`. */
export function rateLimiterFor(config: Config): { rateLimiter?: RateLimiter } {
  const options = rateLimitOptions(config);
  return RateLimiter.active(options) ? { rateLimiter: new RateLimiter(options) } : {};
}

/** The lockout's options from `[limits]` (durations in milliseconds). */
export function lockoutOptions(config: Config): LockoutOptions {
  const l = config.limits;
  return {
    perSource: l.login_failures,
    perUser: l.login_failures_per_user,
    windowMs: l.login_window * 1000,
    baseMs: l.lockout * 1000,
    maxMs: Math.max(l.lockout, l.lockout_max) * 1000,
    maxEntries: l.clients,
  };
}

/** The failed-login lockout when `[limits]` turns it on (the default), else undefined. */
export function lockoutFor(config: Config): LoginLockout | undefined {
  const options = lockoutOptions(config);
  return LoginLockout.active(options) ? new LoginLockout(options) : undefined;
}
