/** Files imported `with { type: "file" }`: Bun gives their path (inside the binary when compiled). */
declare module "swagger-ui-dist/swagger-ui.css" {
  const path: string;
  export default path;
}
declare module "swagger-ui-dist/swagger-ui-bundle.js" {
  const path: string;
  export default path;
}
/** The web UI's bundle (ui/build.ts), embedded by `bun build --compile` (http/ui-embedded.ts). */
declare module "*.berthui" {
  const path: string;
  export default path;
}
