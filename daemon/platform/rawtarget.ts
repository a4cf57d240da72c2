/**
 * What Bun's `request.url` hides: the request target as the client sent it. Bun builds
 * `request.url` with the URL parser, which resolves `.` and `..` segments (also spelled
 * `%2e`, `%2E.` …) and reads `\` as `/`, so `/v2/ok/%2e%2e/other/manifests/x` arrives as
 * `/v2/other/manifests/x`: a proxy in front that allows `/v2/ok/*` would let a request for
 * another repository through. Bun's router, however, matches the raw target and hands each
 * parameter over as sent (percent-decoded). So every request is routed through patterns
 * of 1 … MAX_SEGMENTS parameters, and a request whose raw segments include `.`, `..` or a
 * backslash is marked as rewritten; the HTTP front refuses it (names never contain such
 * segments, so nothing legitimate is lost). A target no pattern matches (an empty segment,
 * more than MAX_SEGMENTS segments) is marked unless its path is `/` or still shows an
 * empty segment, which the URL parser would have removed had it resolved a `..` there.
 */

/** More path segments than any valid request has (a 255-character name has at most 128). */
export const MAX_SEGMENTS = 160;

type Handler<S> = (request: Request, server: S) => Response | Promise<Response>;

/** True for a raw (decoded) segment that the URL parser resolves or rewrites. */
function altered(segment: string): boolean {
  return segment === "." || segment === ".." || segment.includes("\\");
}

/**
 * For a server that sees the raw target itself (node:http in the Node.js build): true when
 * `path` (the target's path as sent, before `?`) has a segment the URL parser would resolve
 * or rewrite, or more segments than any route admits. Percent-encoded segments are decoded
 * first (`%2e%2e` is `..`); one that does not decode is left as it is.
 */
export function rawPathRewritten(path: string): boolean {
  const segments = path.split("/");
  if (segments.length - 1 >= MAX_SEGMENTS) return true;
  for (const segment of segments) {
    let decoded = segment;
    if (segment.includes("%")) {
      try {
        decoded = decodeURIComponent(segment);
      } catch {
        // not decodable: the URL parser leaves it alone too
      }
    }
    if (altered(decoded) || segment.includes("\\")) return true;
  }
  return false;
}

/**
 * Route table and fallback for Bun.serve that call `fetch` for every request, marking in
 * `rewritten` the requests whose raw target the URL parser changed.
 */
export function rawTargetRoutes<S>(fetch: Handler<S>, rewritten: WeakSet<Request>): { routes: Record<string, Handler<S>>; fallback: Handler<S> } {
  const routes: Record<string, Handler<S>> = {};
  const viaRoute: Handler<S> = (request, server) => {
    const params = (request as Request & { params?: Record<string, string> }).params ?? {};
    let count = 0;
    for (const key in params) {
      count++;
      if (altered(params[key]!)) rewritten.add(request);
    }
    if (count >= MAX_SEGMENTS) rewritten.add(request);
    return fetch(request, server);
  };
  let pattern = "";
  for (let i = 1; i <= MAX_SEGMENTS; i++) {
    pattern += `/:s${i}`;
    routes[pattern] = viaRoute;
    routes[`${pattern}/`] = viaRoute;
  }
  const fallback: Handler<S> = (request, server) => {
    const url = request.url;
    const start = url.startsWith("/") ? 0 : url.indexOf("/", url.indexOf("://") + 3);
    const end = url.indexOf("?", start);
    const path = start < 0 ? "/" : url.slice(start, end < 0 ? undefined : end);
    if (path !== "/" && !path.includes("//")) rewritten.add(request);
    return fetch(request, server);
  };
  return { routes, fallback };
}
