/**
 * Board profiles: defaults for a kind of board (storage path, memory caps, mDNS, ...), kept as
 * TOML files in board/ and embedded in the binary at build time. A profile is applied under
 * the configuration file: every key the file sets wins, key by key.
 */
import arm64Emmc from "../../board/arm64-emmc.toml";
import rpi4 from "../../board/rpi4.toml";
import rpi5 from "../../board/rpi5.toml";
import x64Server from "../../board/x64-server.toml";
import { type Identity, identifyBoard } from "./identify";

type Doc = Record<string, unknown>;

/** The known profiles by name (the file name in board/ without .toml). */
export const BOARD_PROFILES: Readonly<Record<string, Doc>> = {
  rpi4: rpi4 as Doc,
  rpi5: rpi5 as Doc,
  "arm64-emmc": arm64Emmc as Doc,
  "x64-server": x64Server as Doc,
};

/** The profile for an identified board, or undefined when none fits (armv7, other CPUs). */
export function profileFor(id: Pick<Identity, "model" | "arch">): string | undefined {
  if (/Raspberry Pi 5/i.test(id.model)) return "rpi5";
  if (/Raspberry Pi (4|Compute Module 4)/i.test(id.model)) return "rpi4";
  if (id.arch === "arm64") return "arm64-emmc";
  if (id.arch === "x64") return "x64-server";
  return undefined;
}

/** Thrown for an unknown profile name; the message names the key. */
export class ProfileError extends Error {}

/**
 * Returns `doc` with the defaults of the profile it selects (`[board] profile`) filled in
 * underneath it, and the profile's name ("none" when no profile applies). `identify`
 * is called only for "auto". Throws {@link ProfileError} for an unknown name.
 */
export function applyProfile(doc: Doc, identify: () => Pick<Identity, "model" | "arch"> = identifyBoard): { doc: Doc; profile: string } {
  const board = doc.board;
  const wanted = typeof board === "object" && board !== null ? (board as Doc).profile : undefined;
  if (wanted === undefined || wanted === "none" || typeof wanted !== "string") return { doc, profile: "none" };
  const name = wanted === "auto" ? profileFor(identify()) : wanted;
  if (name === undefined) return { doc, profile: "none" };
  const profile = BOARD_PROFILES[name];
  if (!profile) {
    throw new ProfileError(`board.profile: unknown profile "${wanted}" (known: auto, none, ${Object.keys(BOARD_PROFILES).join(", ")})`);
  }
  const merged: Doc = {};
  for (const section of new Set([...Object.keys(profile), ...Object.keys(doc)])) {
    const p = profile[section];
    const d = doc[section];
    const isTable = (v: unknown) => typeof v === "object" && v !== null && !Array.isArray(v);
    merged[section] = isTable(p) && isTable(d) ? { ...(p as Doc), ...(d as Doc) } : d ?? p;
  }
  return { doc: merged, profile: name };
}
