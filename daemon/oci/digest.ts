/**
 * Digests: `algorithm ":" encoded`, image-spec "Digests". berth accepts the two registered
 * algorithms, sha256 (64 lowercase hex) and sha512 (128 lowercase hex); anything else is
 * refused with DIGEST_INVALID because the registry could not verify it.
 */
import { RegistryError } from "./errors";

/** A digest algorithm berth can verify. */
export type Algorithm = "sha256" | "sha512";

/** A parsed, validated digest. */
export interface Digest {
  readonly algorithm: Algorithm;
  readonly hex: string;
  /** The canonical `algorithm:hex` form. */
  readonly value: string;
}

const ENCODED_LENGTH: Readonly<Record<Algorithm, number>> = { sha256: 64, sha512: 128 };
const HEX = /^[a-f0-9]+$/;
/** The image-spec's general digest grammar, used to tell "malformed" from "unsupported". */
const GRAMMAR = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/** True if `name` is an algorithm berth supports. */
export function isAlgorithm(name: string): name is Algorithm {
  return name === "sha256" || name === "sha512";
}

/**
 * Parses a digest string. Returns undefined when it is not a valid, supported digest; use
 * {@link requireDigest} to get the error that says why.
 */
export function parseDigest(text: string): Digest | undefined {
  const colon = text.indexOf(":");
  if (colon <= 0) return undefined;
  const algorithm = text.slice(0, colon);
  const hex = text.slice(colon + 1);
  if (!isAlgorithm(algorithm)) return undefined;
  if (hex.length !== ENCODED_LENGTH[algorithm] || !HEX.test(hex)) return undefined;
  return { algorithm, hex, value: text };
}

/** Parses a digest or throws DIGEST_INVALID naming the value and what is wrong with it. */
export function requireDigest(text: string): Digest {
  const digest = parseDigest(text);
  if (digest) return digest;
  if (!GRAMMAR.test(text)) throw new RegistryError("DIGEST_INVALID", `"${clip(text)}" is not a digest`);
  const algorithm = text.slice(0, text.indexOf(":"));
  if (!isAlgorithm(algorithm)) {
    throw new RegistryError("DIGEST_INVALID", `digest algorithm "${clip(algorithm)}" is not supported (use sha256 or sha512)`);
  }
  throw new RegistryError(
    "DIGEST_INVALID",
    `"${clip(text)}" is not a valid ${algorithm} digest (${ENCODED_LENGTH[algorithm]} lowercase hex characters expected)`,
  );
}

/** Builds a digest from an algorithm and the lowercase hex of a hash. */
export function digestOf(algorithm: Algorithm, hex: string): Digest {
  return { algorithm, hex, value: `${algorithm}:${hex}` };
}

/** Shortens a client-supplied value before it is quoted in an error message. */
export function clip(text: string, max = 200): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
