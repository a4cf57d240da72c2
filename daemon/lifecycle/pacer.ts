/**
 * Pacing of the long lifecycle passes (GC, retention, scrub): they yield to the
 * event loop every few milliseconds, so requests are served while they run, and they keep
 * the garbage they leave behind bounded.
 *
 * Why the second part: a pass over a store of 100,000 manifests keeps little alive at any
 * time (one repository's graph), but it allocates hundreds of megabytes of short-lived
 * objects (index.json documents, parsed manifests, directory listings, stat records). The
 * runtime collects lazily, in proportion to what it has allocated, so the JS heap grew to
 * 30-40 MiB during a pass and the resident set, which the allocator gives back slowly,
 * grew by 70-80 MiB with the store. A request-driven collection (platform/memory.ts) never
 * runs during a pass started by the scheduler. So the pacer looks at the heap and the
 * resident set at most every {@link HEAP_LOOK_MS} and forces a full collection once either
 * has grown by more than its slack beyond what the last collection left: memory then stays
 * within the live size plus the slack, whatever the size of the store. Two brakes keep the
 * cost down: growth a collection finds alive (one large repository's graph) doubles the
 * slack, and after a collection none follows for nine times what it took, so collections
 * never take more than a tenth of a pass.
 */
import { collectGarbage, heapUsedBytes, residentBytes } from "../platform/memory";

/** Progress of a pass: units of work (repositories, for GC also the pool sweep) done out of the total. */
export interface PassProgress {
  done: number;
  total: number;
}

/** Growth of the JS heap, beyond what the last collection left, that triggers a collection. */
export const HEAP_SLACK = 6 * 1024 * 1024;

/** Growth of the resident set, beyond what the last collection left, that triggers a collection. */
export const RSS_SLACK = 8 * 1024 * 1024;

/** Milliseconds between two looks at the heap and the resident set. */
export const HEAP_LOOK_MS = 100;

/** After a collection that took d ms, none for QUIET_FACTOR x d ms: collections take at most a tenth of a pass. */
export const QUIET_FACTOR = 9;

/** What {@link HeapBound} reads (injectable for tests). */
export interface MemoryProbe {
  heapUsed(): number | undefined;
  resident(): number | undefined;
  /** Forces a full collection; false when the runtime cannot. */
  collect(): boolean;
}

const runtimeProbe: MemoryProbe = { heapUsed: heapUsedBytes, resident: residentBytes, collect: collectGarbage };

/**
 * Keeps the garbage of a pass within bounds (see the module comment). Two signals, because
 * much of a pass's garbage is not in the JS heap's own count: the strings and buffers of
 * dead objects are native memory that only a collection of their owners frees, so the
 * resident set is watched as well as the heap.
 */
export class HeapBound {
  private heapFloor: number | undefined;
  private rssFloor: number | undefined;
  private lastLook = Number.NEGATIVE_INFINITY;
  /** Multiplies both slacks: doubled after a collection that found the growth alive, reset after one that freed it. */
  private factor = 1;
  /** No collection before this time: the last one's cost, times {@link QUIET_FACTOR}, after it. */
  private quietUntil = Number.NEGATIVE_INFINITY;
  /** Collections this bound forced. */
  collections = 0;

  constructor(
    private readonly probe: MemoryProbe = runtimeProbe,
    private readonly lookMs = HEAP_LOOK_MS,
    /** Growth of the resident set that triggers a collection (a pass whose garbage is mostly native memory takes a smaller one). */
    private readonly rssSlack = RSS_SLACK,
  ) {}

  /**
   * Takes the floors now, at the start of a pass: growth in the pass's first step (a walk
   * that lists every repository before the first tick) then counts against the slack
   * instead of raising the floors. With `collect`, first collects what earlier work left
   * (the previous pass's garbage), so the pass starts from the live size.
   */
  start(collect = false): void {
    if (collect && this.probe.collect()) this.collections++;
    this.heapFloor = this.probe.heapUsed();
    this.rssFloor = this.probe.resident();
  }

  /** Looks (at most every `lookMs`) and collects when the heap or the resident set grew by more than its slack. */
  check(now = performance.now()): void {
    if (now - this.lastLook < this.lookMs || now < this.quietUntil) return;
    this.lastLook = now;
    const heap = this.probe.heapUsed();
    const rss = this.probe.resident();
    // the floors follow what the runtime frees by itself
    if (heap !== undefined && (this.heapFloor === undefined || heap < this.heapFloor)) this.heapFloor = heap;
    if (rss !== undefined && (this.rssFloor === undefined || rss < this.rssFloor)) this.rssFloor = rss;
    const heapGrew = heap !== undefined && heap - this.heapFloor! > HEAP_SLACK * this.factor;
    const rssGrew = rss !== undefined && rss - this.rssFloor! > this.rssSlack * this.factor;
    if (!heapGrew && !rssGrew) return;
    const started = performance.now();
    if (!this.probe.collect()) return;
    this.collections++;
    // a collection over a large live heap is slow: at most a tenth of the pass's time goes to them
    this.quietUntil = now + QUIET_FACTOR * (performance.now() - started);
    const grown = heap !== undefined ? heap - this.heapFloor! : 0;
    const after = this.probe.heapUsed() ?? heap;
    // Growth that a collection does not free is live (one large repository's graph): the
    // slack then doubles, so that collections stay a constant share of the work however
    // large the live set grows, instead of one per slack of growth.
    // Only heap growth tells: a collection the resident set asked for (native garbage, such as
    // the strings of a walk) frees what the heap count never saw, and doubling then let a
    // scrub's resident set run 16 MiB past its floor.
    this.factor = heapGrew && after !== undefined && (heap - after) * 2 < grown ? Math.min(this.factor * 2, 64) : 1;
    // What the collection left: freed pages the allocator keeps count in the resident set
    // until reused, so the next collection waits for growth beyond this.
    this.heapFloor = after;
    this.rssFloor = this.probe.resident() ?? rss;
  }
}

/**
 * Yields to the event loop once more than `sliceMs` passed since the last yield, and keeps
 * the pass's garbage bounded ({@link HeapBound}) at those points.
 */
export class Pacer {
  private last = performance.now();

  constructor(
    private readonly sliceMs = 4,
    /** Undefined: no collections forced (tests that count steps). */
    readonly heap: HeapBound | undefined = new HeapBound(),
  ) {}

  /** Runs a computation written as a generator, yielding to the event loop between its steps as needed. */
  async run<T>(steps: Generator<void, T>): Promise<T> {
    for (;;) {
      const next = steps.next();
      if (next.done) return next.value;
      await this.tick();
    }
  }

  /** Call once per unit of work; resolves at once unless the slice is used up. */
  async tick(): Promise<void> {
    const now = performance.now();
    if (now - this.last < this.sliceMs) return;
    this.heap?.check(now);
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.last = performance.now();
  }
}
