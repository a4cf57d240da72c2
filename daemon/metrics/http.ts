/**
 * Request metrics, counted on the hot path. Costs per request: one performance.now() pair, a
 * Map lookup keyed by a short string, a bucket search over a dozen bounds, and reading two
 * Content-Length headers. No allocation beyond the key string; nothing is formatted until
 * /metrics is scraped.
 */
import type { Family, Sample } from "./registry";

/** Upper bounds of the latency buckets, in seconds. */
export const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] as const;

interface Latency {
  counts: Float64Array; // per bucket (not cumulative), plus +Inf at the end
  sum: number;
  count: number;
}

/** Counters for the HTTP front. */
export class HttpMetrics {
  private readonly requests = new Map<string, number>(); // "METHOD STATUS" -> count
  private readonly latency = new Map<string, Latency>(); // method -> histogram
  private bytesIn = 0;
  private bytesOut = 0;
  private inFlight = 0;

  /** Call when a request starts; returns the start time to pass to {@link end}. */
  begin(): number {
    this.inFlight++;
    return performance.now();
  }

  /** Records a finished request. */
  end(started: number, req: Request, res: Response): void {
    this.inFlight--;
    const seconds = (performance.now() - started) / 1000;
    const method = req.method;
    const key = `${method} ${res.status}`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
    let h = this.latency.get(method);
    if (!h) this.latency.set(method, (h = { counts: new Float64Array(LATENCY_BUCKETS.length + 1), sum: 0, count: 0 }));
    let i = 0;
    while (i < LATENCY_BUCKETS.length && seconds > LATENCY_BUCKETS[i]!) i++;
    h.counts[i]!++;
    h.sum += seconds;
    h.count++;
    const inLen = req.headers.get("content-length");
    if (inLen !== null) this.bytesIn += Number(inLen) || 0;
    const outLen = res.headers.get("content-length");
    if (outLen !== null) this.bytesOut += Number(outLen) || 0; // the body itself is never touched here
  }

  /** Records a request that failed before it had a response. */
  abort(): void {
    this.inFlight--;
  }

  /** The families for a scrape. */
  families(): Family[] {
    const requests: Sample[] = [...this.requests].map(([key, value]) => {
      const [method, code] = key.split(" ") as [string, string];
      return { labels: { method, code }, value };
    });
    const latency: Sample[] = [];
    for (const [method, h] of this.latency) {
      let cumulative = 0;
      LATENCY_BUCKETS.forEach((le, i) => {
        cumulative += h.counts[i]!;
        latency.push({ suffix: "_bucket", labels: { method, le: String(le) }, value: cumulative });
      });
      latency.push({ suffix: "_bucket", labels: { method, le: "+Inf" }, value: h.count });
      latency.push({ suffix: "_sum", labels: { method }, value: h.sum });
      latency.push({ suffix: "_count", labels: { method }, value: h.count });
    }
    return [
      { name: "berth_http_requests_total", help: "HTTP requests answered, by method and status code.", type: "counter", samples: requests },
      { name: "berth_http_request_duration_seconds", help: "Time to the response (headers; streamed bodies continue after), by method.", type: "histogram", samples: latency },
      { name: "berth_http_received_bytes_total", help: "Request body bytes announced by Content-Length.", type: "counter", samples: [{ value: this.bytesIn }] },
      { name: "berth_http_sent_bytes_total", help: "Response body bytes announced by Content-Length (every /v2 body sets it; HEAD counts what a GET would send).", type: "counter", samples: [{ value: this.bytesOut }] },
      { name: "berth_http_requests_in_flight", help: "Requests being handled now.", type: "gauge", samples: [{ value: this.inFlight }] },
    ];
  }
}
