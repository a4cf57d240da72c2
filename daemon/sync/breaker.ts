/**
 * The circuit breaker of one upstream: after `failures` consecutive outage faults the
 * upstream is marked down, and requests fail at once (local content is served, misses get
 * 503) instead of each waiting for a timeout. While down, `probe()` is run every
 * `probeIntervalMs` in the background; the first success marks it up again. Nothing
 * about the breaker is persisted: a restart starts optimistic.
 */
import type { Logger } from "../log";

/** "up" (closed) or "down" (open). */
export type BreakerState = "up" | "down";

/** Options for {@link Breaker}. */
export interface BreakerOptions {
  name: string;
  failures: number;
  probeIntervalMs: number;
  /** Checks the upstream; resolves true when it answers. */
  probe: () => Promise<boolean>;
}

/** A circuit breaker with background recovery probes. */
export class Breaker {
  private consecutive = 0;
  private downSince: number | undefined;
  private lastError = "";
  private timer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;

  constructor(
    private readonly options: BreakerOptions,
    private readonly log: Logger,
  ) {}

  /** The current state. */
  get state(): BreakerState {
    return this.downSince === undefined ? "up" : "down";
  }

  /** Records a successful exchange with the upstream. */
  success(): void {
    this.consecutive = 0;
    if (this.downSince !== undefined) this.recover();
  }

  /** Records an outage fault (unreachable, timeout, TLS, 5xx). */
  failure(message: string): void {
    this.lastError = message;
    this.consecutive++;
    if (this.downSince === undefined && this.consecutive >= this.options.failures) {
      this.downSince = Date.now();
      this.log.warn("upstream marked down; serving cached content only", { upstream: this.options.name, error: message, probeIntervalMs: this.options.probeIntervalMs });
      this.armProbe();
    }
  }

  /** Details for errors and the admin API. */
  info() {
    return {
      state: this.state,
      consecutiveFailures: this.consecutive,
      downSince: this.downSince === undefined ? null : new Date(this.downSince).toISOString(),
      lastError: this.lastError || null,
    };
  }

  /** A human sentence for a request refused while down. */
  describeDown(): string {
    return `unreachable since ${new Date(this.downSince ?? Date.now()).toISOString()} (${this.lastError}); serving cached content only`;
  }

  /** Stops probing. */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }

  private recover(): void {
    const downMs = Date.now() - (this.downSince ?? Date.now());
    this.downSince = undefined;
    this.consecutive = 0;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.log.info("upstream is back", { upstream: this.options.name, downMs });
  }

  private armProbe(): void {
    if (this.closed) return;
    this.timer = setTimeout(async () => {
      let ok = false;
      try {
        ok = await this.options.probe();
      } catch {
        ok = false;
      }
      if (this.downSince === undefined) return;
      if (ok) this.recover();
      else this.armProbe();
    }, this.options.probeIntervalMs);
    (this.timer as { unref?: () => void }).unref?.();
  }
}
