/**
 * The entry point of the Node.js build (scripts/build-node): runs the command line as
 * daemon/main.ts does under Bun. The build swaps the runtime-specific platform modules
 * (serve, sqlite, password, semver) for their node/ counterparts.
 */
import { main } from "../../main";

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
