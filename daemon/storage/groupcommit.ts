/**
 * Group commit of index.json updates. Every manifest push rewrites its repository's whole
 * index.json (a 2,000-tag repository: ~500 KB of JSON, encoded, written, fsynced, parsed
 * maps rebuilt), and pushes into one repository are serialised on its lock. Rather than one
 * rewrite per push, the updates that arrive while a rewrite is in flight wait together and
 * share the next one: under the repository's lock each `mutate` runs in arrival order on the
 * list the previous one made, the result is written once (atomically, fsynced), and then
 * every `after` runs, still under the lock, and every update resolves. An update therefore
 * resolves only once the write holding its change is durable, exactly as one write per
 * update did; only the number of writes (and the memory they churn) shrinks.
 *
 * A `mutate` that throws refuses its own change only (its caller gets the error; the others
 * carry on). A write that fails fails every update of the group that was not already settled.
 * A group holds at most {@link MAX_GROUP} updates; the rest wait for the next write.
 */
import type { IndexMutation, RepoIndex } from "./api";
import type { Descriptor } from "../oci/manifest";
import type { KeyedLock } from "./lock";

/** Updates written together at most (the rest go into the next write). */
export const MAX_GROUP = 256;

/** How a group reads and writes a repository's index; both run under the repository's lock. */
export interface GroupIo {
  /** The index as it is now; undefined when the repository has none (GC removed it meanwhile). */
  current(name: string): Promise<RepoIndex | undefined>;
  /** Creates the repository's layout again, empty (a change for a repository removed meanwhile). */
  create(name: string): Promise<RepoIndex>;
  /** Writes `entries` durably over version `stamp`; undefined when the stored index is no longer `stamp`. */
  write(name: string, stamp: string, entries: Descriptor[]): Promise<RepoIndex | undefined>;
}

/** One update waiting for its repository's next write. */
interface Waiter {
  mutate: IndexMutation;
  after?: (index: RepoIndex) => void;
  resolve: (index: RepoIndex) => void;
  reject: (err: unknown) => void;
}

/** Figures of a {@link GroupCommit}: updates applied and index.json writes made for them. */
export interface GroupFigures {
  updates: number;
  writes: number;
}

/** Applies concurrent updates of one repository in shared writes (see the file's comment). */
export class GroupCommit {
  private readonly queues = new Map<string, Waiter[]>();
  private readonly figures: GroupFigures = { updates: 0, writes: 0 };

  constructor(
    private readonly lock: KeyedLock,
    private readonly io: GroupIo,
  ) {}

  /** Queues `mutate` for the repository's next write; resolves with the durable index that holds it. */
  update(name: string, mutate: IndexMutation, after?: (index: RepoIndex) => void): Promise<RepoIndex> {
    return new Promise<RepoIndex>((resolve, reject) => {
      const waiter: Waiter = { mutate, after, resolve, reject };
      const queue = this.queues.get(name);
      if (queue) {
        queue.push(waiter);
        return;
      }
      this.queues.set(name, [waiter]);
      void this.lock.run(name, () => this.commit(name));
    });
  }

  /** Updates applied and writes made so far. */
  stats(): GroupFigures {
    return { ...this.figures };
  }

  /** Takes the queued updates (up to MAX_GROUP) and applies them in one write; never throws. */
  private async commit(name: string): Promise<void> {
    const queue = this.queues.get(name) ?? [];
    const group = queue.splice(0, MAX_GROUP);
    if (queue.length === 0) this.queues.delete(name);
    // the rest (and whatever joins them) wait for the write after this one
    else void this.lock.run(name, () => this.commit(name));
    const pending = new Set(group);
    try {
      // A repository GC removed as empty after the caller made sure of it: each change is
      // judged against an empty list (a push whose blobs went with it is refused by its own
      // checks), and the layout is made again only if a change is left to write.
      const found = await this.io.current(name);
      let entries = found?.doc.manifests ?? [];
      let changed = false;
      for (const w of group) {
        try {
          const next = await w.mutate(entries);
          if (next !== undefined) {
            entries = next;
            changed = true;
          }
        } catch (err) {
          pending.delete(w);
          w.reject(err);
        }
      }
      let current = found;
      if (changed) {
        current ??= await this.io.create(name);
        const written = await this.io.write(name, current.stamp, entries);
        if (!written) throw new Error(`index.json of ${name} changed under a write of berth's (another tool rewrote it); the write was not made`);
        current = written;
        this.figures.writes++;
      }
      if (!current) throw new Error(`repository ${name} has no index.json`); // nothing to write to a removed repository
      const index = current;
      for (const w of pending) {
        try {
          w.after?.(index);
          this.figures.updates++;
          w.resolve(index);
        } catch (err) {
          w.reject(err);
        }
      }
    } catch (err) {
      for (const w of pending) w.reject(err);
    }
  }
}
