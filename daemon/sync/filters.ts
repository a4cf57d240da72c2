/**
 * What a registry's configuration admits: repository globs, tag regexes, semver ranges and
 * platforms; and the mapping between upstream and local repository names
 * (`dest_prefix` / `strip_prefix`, see daemon/config/sync.ts).
 */
import type { SyncRegistryConfig } from "../config/sync";
import { satisfies } from "../platform/semver";
import { globToRegExp } from "../oci/glob";

/** A platform as "os/arch[/variant]". */
export interface PlatformSpec {
  os: string;
  architecture: string;
  variant?: string;
}

/**
 * The variant an index entry without one stands for (as containerd and the OCI image spec's
 * platform matching read it): "linux/arm64" is arm64 v8, "linux/arm" is arm v7. So a filter
 * "linux/arm64/v8" keeps the many images that publish arm64 without a variant.
 */
const DEFAULT_VARIANT: Record<string, string> = { arm64: "v8", arm: "v7" };

/** The compiled filters of one registry. */
export class Filters {
  private readonly repos: RegExp[];
  private readonly tags: RegExp | undefined;
  private readonly exclude: RegExp | undefined;
  readonly platforms: PlatformSpec[];

  constructor(private readonly config: SyncRegistryConfig) {
    this.repos = config.repos.map(globToRegExp);
    this.tags = config.tags ? new RegExp(config.tags) : undefined;
    this.exclude = config.excludeTags ? new RegExp(config.excludeTags) : undefined;
    this.platforms = config.platforms.map((p) => {
      const [os, architecture, variant] = p.split("/");
      return variant ? { os: os!, architecture: architecture!, variant } : { os: os!, architecture: architecture! };
    });
  }

  /** Upstream repositories named literally (globs without wildcards): listed without a catalog. */
  literalRepos(): string[] {
    return this.config.repos.filter((g) => !/[*?]/.test(g));
  }

  /** True when every repo glob is literal (no catalog needed). */
  allLiteral(): boolean {
    return this.config.repos.every((g) => !/[*?]/.test(g));
  }

  /** Does the configuration mirror upstream repository `upstream`? */
  repo(upstream: string): boolean {
    return this.repos.some((re) => re.test(upstream));
  }

  /** Does the configuration mirror tag `tag`? (regex, exclude regex, semver range) */
  tag(tag: string): boolean {
    if (this.tags && !this.tags.test(tag)) return false;
    if (this.exclude?.test(tag)) return false;
    if (this.config.semver) {
      const version = tag.replace(/^v/, "");
      if (!/^\d+\.\d+\.\d+([-+].*)?$/.test(version)) return false;
      if (!satisfies(version, this.config.semver)) return false;
    }
    return true;
  }

  /** Does the configuration keep a child manifest of `platform` (from an index)? A missing variant is read as the architecture's default ({@link DEFAULT_VARIANT}). */
  platform(platform: Record<string, unknown> | undefined): boolean {
    if (this.platforms.length === 0) return true;
    if (!platform) return false;
    const variant = typeof platform.variant === "string" && platform.variant !== "" ? platform.variant : DEFAULT_VARIANT[String(platform.architecture)];
    return this.platforms.some(
      (p) => p.os === platform.os && p.architecture === platform.architecture && (p.variant === undefined || p.variant === variant),
    );
  }

  /** The local name of upstream repository `upstream`, or undefined if it lies outside `strip_prefix`. */
  toLocal(upstream: string): string | undefined {
    let rest = upstream;
    const strip = this.config.stripPrefix;
    if (strip) {
      if (!upstream.startsWith(`${strip}/`)) return undefined;
      rest = upstream.slice(strip.length + 1);
    }
    return this.config.destPrefix ? `${this.config.destPrefix}/${rest}` : rest;
  }

  /** The upstream name of local repository `local`, or undefined if it lies outside `dest_prefix`. */
  toUpstream(local: string): string | undefined {
    let rest = local;
    const dest = this.config.destPrefix;
    if (dest) {
      if (!local.startsWith(`${dest}/`)) return undefined;
      rest = local.slice(dest.length + 1);
    }
    return this.config.stripPrefix ? `${this.config.stripPrefix}/${rest}` : rest;
  }
}
