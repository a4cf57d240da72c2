/**
 * Dispatch of the client commands (login, logout, repos, images, inspect, rm, search, sync,
 * status, gc/scrub --registry, bench): each runs in its own module, loaded on demand, and
 * every failure ends here as one message and an exit code from client/errors.ts.
 */
import { finish } from "../client/args";
import { ClientError, EXIT } from "../client/errors";
import { COMMAND_HELP } from "./usage";

/** Runs client command `command` (or the online gc/scrub); returns the exit code. */
export async function clientCommand(command: string, argv: string[]): Promise<number> {
  try {
    switch (command) {
      case "login":
        return await (await import("./login")).loginCommand(argv);
      case "logout":
        return await (await import("./login")).logoutCommand(argv);
      case "repos":
        return await (await import("./remote")).reposCommand(argv);
      case "images":
        return await (await import("./remote")).imagesCommand(argv);
      case "inspect":
        return await (await import("./remote")).inspectCommand(argv);
      case "rm":
        return await (await import("./remote")).rmCommand(argv);
      case "search":
        return await (await import("./remote")).searchCommand(argv);
      case "sync":
        return await (await import("./ops")).syncCommand(argv);
      case "status":
        return await (await import("./ops")).statusCommand(argv);
      case "gc":
      case "scrub":
        if (argv.some((a) => a === "--config" || a.startsWith("--config="))) {
          throw new ClientError(`${command} takes --registry (a running daemon) or --config (offline, on its storage root), not both`, EXIT.usage);
        }
        return await (await import("./ops")).onlinePassCommand(command, argv);
      case "bench":
        return await (await import("./bench")).benchCommand(argv);
      case "bundle":
        return await (await import("../bundle/cli")).bundleCommand(argv);
    }
    throw new Error(`"${command}" is not a client command`);
  } catch (err) {
    return finish(err, COMMAND_HELP[command] ?? "");
  }
}
