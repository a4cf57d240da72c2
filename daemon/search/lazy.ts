/**
 * The search extension as the /v2 handler sees it, without loading it: the handler module
 * (graphql-js, the schema, search's tables) is imported on the first search request, so a
 * registry nobody searches pays nothing in memory or start-up time. `[search] enabled =
 * false` leaves this out entirely and the endpoint answers 404.
 */
import type { Principal } from "../auth/identity";
import type { SearchDeps, SearchHandler } from "./handler";

/** The path of the search endpoint (zot's). */
export const SEARCH_PATH = "/v2/_zot/ext/search";

/** The search extension, loaded on first use. */
export interface SearchExtension {
  handle(req: Request, principal: Principal | undefined): Promise<Response>;
  /** True once the module has been imported (for the idle-cost test and figures). */
  loaded(): boolean;
}

/** A search extension that imports search/handler.ts when the first request arrives; `deps` is called then. */
export function lazySearch(deps: () => SearchDeps): SearchExtension {
  let handler: Promise<SearchHandler> | undefined;
  let ready = false;
  return {
    handle(req, principal) {
      handler ??= import("./handler").then((m) => {
        ready = true;
        return m.createSearchHandler(deps());
      });
      // a failure to load (a database fault) is not remembered: the next request tries again
      handler.catch(() => (handler = undefined));
      return handler.then((h) => h(req, principal));
    },
    loaded: () => ready,
  };
}

/** The body of `GET /v2/_oci/ext/discover` (OCI distribution-spec extensions): zot's `_zot` extension with search. */
export function discoverBody(search: boolean): { extensions: { name: string; url: string; description: string; endpoints: string[] }[] } {
  if (!search) return { extensions: [] };
  return {
    extensions: [{
      name: "_zot",
      url: "https://github.com/project-zot/zot/blob/main/pkg/extensions/_zot.md",
      description: "zot registry extensions",
      endpoints: [SEARCH_PATH],
    }],
  };
}
