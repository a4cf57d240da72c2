/**
 * The named late-binding points of start-up wiring (daemon/late.ts): unbound reads are
 * undefined, a binding is seen by closures made before it, and a second binding throws.
 */
import { describe, expect, test } from "bun:test";
import { Late } from "../../daemon/late";

describe("Late", () => {
  test("a closure made before the binding sees the value once it is bound", () => {
    const late = new Late<{ n: number }>("the counter");
    const read = () => late.current?.n;
    expect(read()).toBeUndefined();
    expect(late.isBound).toBe(false);
    const value = { n: 7 };
    expect(late.bind(value)).toBe(value);
    expect(read()).toBe(7);
    expect(late.isBound).toBe(true);
  });

  test("binding twice is a wiring fault that names the value", () => {
    const late = new Late<number>("the storage lifecycles");
    late.bind(1);
    expect(() => late.bind(2)).toThrow("the storage lifecycles is already bound");
    expect(late.current).toBe(1);
  });
});
