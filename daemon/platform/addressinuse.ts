/** The error both server seams (Bun.serve, and node:http in the Node.js build) throw for a port in use. */

/** Thrown when the address and port are taken by another socket; the message names them. */
export class AddressInUseError extends Error {
  constructor(hostname: string, port: number) {
    super(`Cannot listen on ${hostname}:${port}: the address is in use by another process; stop it or set another [http] port`);
    this.name = "AddressInUseError";
  }
}
