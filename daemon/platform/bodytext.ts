/**
 * Reading a small request body (a form, a JSON document, a PEM text) with a hard cap that
 * holds also when the body has no Content-Length (a chunked upload): the bytes are counted
 * as they stream and reading stops past the cap, so a request can never make the process
 * hold more than the cap. Web streams only (capped.ts), so the Node.js build shares it.
 */
import { readCapped } from "./capped";

/**
 * The body of `req` as UTF-8 text when it has at most `maxBytes` bytes; undefined when it
 * has more (declared or streamed) or cannot be read. A missing body is "".
 */
export async function readTextAtMost(req: Request, maxBytes: number): Promise<string | undefined> {
  const declared = Number(req.headers.get("content-length") ?? "0");
  if (declared > maxBytes) return undefined;
  try {
    return new TextDecoder().decode(await readCapped(req.body, { maxBytes }));
  } catch {
    return undefined;
  }
}
