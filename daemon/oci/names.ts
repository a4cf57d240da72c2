/**
 * The name and tag grammar of the distribution spec ("Pulling manifests"):
 *   name  [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
 *   tag   [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}
 * Because repository names become directories under the storage root, berth also refuses
 * the components that are file names inside an OCI layout (blobs, oci-layout, index.json),
 * so one repository can never reach into another's layout.
 */
import { RegistryError } from "./errors";
import { clip } from "./digest";

const NAME = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
const TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
const RESERVED_COMPONENTS = new Set(["blobs", "oci-layout", "index.json"]);

/** Longest repository name accepted (the spec lets registries refuse names over 255). */
export const MAX_NAME_LENGTH = 255;

/** Returns a reason the repository name is invalid, or undefined when it is valid. */
export function nameProblem(name: string): string | undefined {
  if (name.length === 0) return "the repository name is empty";
  if (name.length > MAX_NAME_LENGTH) return `the repository name is longer than ${MAX_NAME_LENGTH} characters`;
  if (!NAME.test(name)) return `"${clip(name)}" does not match the repository name grammar`;
  for (const part of name.split("/")) {
    if (RESERVED_COMPONENTS.has(part)) return `"${clip(name)}" contains the reserved path component "${part}"`;
  }
  return undefined;
}

/** Throws NAME_INVALID unless `name` is a valid repository name. */
export function requireName(name: string): string {
  const problem = nameProblem(name);
  if (problem) throw new RegistryError("NAME_INVALID", problem);
  return name;
}

/** True if `tag` matches the tag grammar. */
export function isTag(tag: string): boolean {
  return TAG.test(tag);
}

/** Throws MANIFEST_INVALID (the spec has no TAG_INVALID) unless `tag` is a valid tag. */
export function requireTag(tag: string): string {
  if (!isTag(tag)) throw new RegistryError("MANIFEST_INVALID", `"${clip(tag)}" is not a valid tag`);
  return tag;
}
