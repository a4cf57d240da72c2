/**
 * `berth board detect`: a one-off inventory of the machine with systeminformation (which
 * spawns helper processes, fine once, too costly in a loop) together with /proc and /sys,
 * and the profile that `[board] profile = "auto"` would apply.
 */
import si from "systeminformation";
import { blockDeviceOf, identifyBoard } from "./identify";
import { profileFor } from "./profiles";

/** The inventory `berth board detect` prints. */
export interface BoardReport {
  model: string;
  manufacturer: string;
  arch: string;
  cpu: { brand: string; cores: number; physicalCores: number; speedGHz: number };
  memoryBytes: number;
  storage: { path: string; device: string; disk: string; kind: string; sizeBytes: number | null; removable: boolean | null };
  /** The profile "auto" selects, or "none". */
  profile: string;
}

/** Collects the inventory for the storage root `storageRoot`. */
export async function detectBoard(storageRoot: string): Promise<BoardReport> {
  const id = identifyBoard();
  const [system, cpu, mem, disks] = await Promise.all([si.system(), si.cpu(), si.mem(), si.blockDevices()]);
  const dev = blockDeviceOf(storageRoot);
  const disk = disks.find((d) => d.name === dev.disk);
  return {
    model: id.model || system.model || "",
    manufacturer: system.manufacturer || cpu.manufacturer || "",
    arch: id.arch,
    cpu: { brand: `${cpu.manufacturer} ${cpu.brand}`.trim(), cores: cpu.cores, physicalCores: cpu.physicalCores, speedGHz: cpu.speed },
    memoryBytes: mem.total,
    storage: {
      path: storageRoot,
      device: dev.name,
      disk: dev.disk,
      kind: dev.kind,
      sizeBytes: disk ? disk.size : null,
      removable: disk ? disk.removable : null,
    },
    profile: profileFor(id) ?? "none",
  };
}

/** Human-readable lines for a report. */
export function formatReport(r: BoardReport): string {
  const gib = (n: number) => `${(n / 2 ** 30).toFixed(1)} GiB`;
  const sd = r.storage.kind === "sd" ? " (SD card: the profile's IO budget spares it)" : "";
  return [
    `model:    ${r.model || "(no device tree)"}${r.manufacturer ? ` [${r.manufacturer}]` : ""}`,
    `cpu:      ${r.cpu.brand}, ${r.cpu.cores} cores (${r.arch})`,
    `memory:   ${gib(r.memoryBytes)}`,
    `storage:  ${r.storage.path} on ${r.storage.device || "(no block device)"}${r.storage.disk && r.storage.disk !== r.storage.device ? ` of ${r.storage.disk}` : ""}, ${r.storage.kind}${r.storage.sizeBytes ? `, ${gib(r.storage.sizeBytes)}` : ""}${sd}`,
    `profile:  ${r.profile}${r.profile === "none" ? " (no profile fits; built-in defaults apply)" : ` (board/${r.profile}.toml)`}`,
  ].join("\n");
}
