/** berth's version; `scripts/build` stamps release builds through BERTH_VERSION at compile time. */
export const VERSION: string = process.env.BERTH_VERSION_STAMP ?? "0.1.0-dev";
