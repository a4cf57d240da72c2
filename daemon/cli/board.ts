/**
 * `berth board detect [--config FILE] [--json]`: what this machine is and which profile
 * `[board] profile = "auto"` applies. The storage root examined is the configured one.
 */
import { detectBoard, formatReport } from "../board/detect";
import { loadConfig } from "../config/load";
import { COMMAND_HELP, usageError } from "./usage";

/** Runs the command; returns the exit code. ConfigError propagates to the caller. */
export async function boardCommand(args: string[]): Promise<number> {
  if (args[0] !== "detect") return usageError(args[0] === undefined ? "board needs a subcommand (detect)" : `unknown board subcommand "${args[0]}"`, COMMAND_HELP.board!);
  let configPath: string | undefined;
  let json = false;
  for (let i = 1; i < args.length; i++) {
    if (args[i] === "--config" && args[i + 1] !== undefined) configPath = args[++i];
    else if (args[i] === "--json") json = true;
    else return usageError(`unknown argument "${args[i]}"`, COMMAND_HELP.board!);
  }
  const config = loadConfig(configPath);
  const report = await detectBoard(config.storage.root);
  console.log(json ? JSON.stringify(report, null, 2) : formatReport(report));
  return 0;
}
