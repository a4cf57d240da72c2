/**
 * A tiny metrics registry rendered in the Prometheus text exposition format (version 0.0.4).
 *
 * Modules contribute plain objects, not metric classes: a *provider* is a function that
 * returns the current families when /metrics is scraped. So a module keeps its own counters
 * as ordinary numbers (no import of this file on its hot path), and registers once:
 *
 *   metrics.provide("gc", () => [
 *     { name: "berth_gc_runs_total", help: "GC passes completed.", type: "counter", samples: [{ value: gc.runs }] },
 *     { name: "berth_gc_freed_bytes_total", help: "Bytes GC freed.", type: "counter", samples: [{ value: gc.freed }] },
 *   ]);
 *
 * Names should start with `berth_`, counters end in `_total`, units are base units (bytes,
 * seconds). A provider that throws is skipped for that scrape and reported as
 * `berth_metrics_provider_errors_total{provider=...}`; it never breaks the page.
 */

/** One sample of a family: optional labels and a value. */
export interface Sample {
  labels?: Record<string, string>;
  value: number;
  /** Appended to the family name (histograms: "_bucket", "_sum", "_count"). */
  suffix?: string;
}

/** One metric family. */
export interface Family {
  name: string;
  help: string;
  type: "counter" | "gauge" | "histogram";
  samples: Sample[];
}

/** Returns the families to render now. May be async (e.g. a cached filesystem walk). */
export type Provider = () => Family[] | Promise<Family[]>;

const escapeLabel = (v: string) => v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
const escapeHelp = (v: string) => v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");

function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

/** Renders families in the text format. */
export function renderFamilies(families: readonly Family[]): string {
  let out = "";
  for (const f of families) {
    out += `# HELP ${f.name} ${escapeHelp(f.help)}\n# TYPE ${f.name} ${f.type}\n`;
    for (const s of f.samples) {
      const labels = s.labels ? Object.entries(s.labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",") : "";
      out += `${f.name}${s.suffix ?? ""}${labels ? `{${labels}}` : ""} ${formatValue(s.value)}\n`;
    }
  }
  return out;
}

/** The registry of providers behind /metrics. */
export class MetricsRegistry {
  private readonly providers = new Map<string, Provider>();
  private readonly errors = new Map<string, number>();

  /** Registers (or replaces) the provider called `id`. Returns a function that removes it. */
  provide(id: string, provider: Provider): () => void {
    this.providers.set(id, provider);
    return () => {
      if (this.providers.get(id) === provider) this.providers.delete(id);
    };
  }

  /** The page for a scrape. */
  async render(): Promise<string> {
    const families: Family[] = [];
    const names = new Set<string>();
    for (const [id, provider] of this.providers) {
      try {
        for (const f of await provider()) {
          if (names.has(f.name)) continue; // a name is rendered once: the first provider wins
          names.add(f.name);
          families.push(f);
        }
      } catch {
        this.errors.set(id, (this.errors.get(id) ?? 0) + 1);
      }
    }
    if (this.errors.size > 0) {
      families.push({
        name: "berth_metrics_provider_errors_total",
        help: "Scrapes on which a metrics provider failed.",
        type: "counter",
        samples: [...this.errors].map(([provider, value]) => ({ labels: { provider }, value })),
      });
    }
    return renderFamilies(families);
  }
}
