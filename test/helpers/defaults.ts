/**
 * Preloaded before every test file (bunfig.toml `[test] preload`): the default per-test and
 * per-hook timeout. Bun 1.4.5 ignores bunfig's `[test] timeout`, so without this every test
 * had Bun's 5 s, which tests that start real daemons and clients overrun on a loaded machine.
 * A file that needs more sets its own with `setDefaultTimeout`.
 */
import { setDefaultTimeout } from "bun:test";

setDefaultTimeout(30_000);
