/**
 * Named late-binding points for start-up wiring.
 *
 * A few parts of the daemon reach objects that can only be built after them: storage asks the
 * lifecycles to admit upload bytes, but the lifecycles are built over the opened roots and the
 * registry (itself over the storage); the registry's hooks reach the CVE scanner and the trust
 * module, which need the registry. Everything else is built in order, each object whole in one
 * step (the lifecycles' touch marks and statistics, which the registry reports to, come first:
 * storage/roots/lifecycles.ts RootMarks). Instead of a
 * bare `let x` that a closure reads and a line further down assigns, startDaemon declares a
 * {@link Late} per such point, up front and named, and binds it exactly once where the
 * object is built. A second binding is a wiring fault and throws.
 */

/** A value that exists only after a later step of start-up; read it through {@link Late.current}. */
export class Late<T> {
  private value: T | undefined;
  private bound = false;

  /** `what` names the value in the error a second binding throws. */
  constructor(readonly what: string) {}

  /** Binds the value; throws if it was bound already. */
  bind(value: T): T {
    if (this.bound) throw new Error(`${this.what} is already bound: start-up wiring binds each late value once`);
    this.value = value;
    this.bound = true;
    return value;
  }

  /** The value, or undefined until it is bound (callers say what that means for them). */
  get current(): T | undefined {
    return this.value;
  }

  /** Whether {@link bind} has been called. */
  get isBound(): boolean {
    return this.bound;
  }
}
