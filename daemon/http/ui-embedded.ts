/**
 * The web UI's bundle inside a compiled binary: scripts/build writes ui/dist/assets.berthui
 * (ui/build.ts) before `bun build --compile`, which embeds the file through this import.
 * Only a compiled binary imports this module (http/ui.ts); a source run builds the UI itself.
 */
import path from "../../ui/dist/assets.berthui" with { type: "file" };

/** The embedded bundle's path (in Bun's embedded file system). */
export default path;
