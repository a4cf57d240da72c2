/**
 * HTTP requests sent from a chosen loopback source address (127.0.0.2, 127.0.0.3, …: all of
 * 127/8 is loopback on Linux), so a test can play several clients against one daemon bound
 * to 127.0.0.1. fetch cannot choose its source address; node:http can.
 */
import { request } from "node:http";

/** A response: status, headers (lower-case names) and body text. */
export interface PlainResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** Sends one request to `url` from `localAddress` on a fresh connection. */
export function requestFrom(localAddress: string, url: string, init: { method?: string; headers?: Record<string, string>; body?: string | Uint8Array } = {}): Promise<PlainResponse> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: u.hostname, port: Number(u.port), path: `${u.pathname}${u.search}`, method: init.method ?? "GET", headers: init.headers ?? {}, localAddress, agent: false },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (body += d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(init.body);
  });
}
