/** The parts of the `macaroon` package (v3, no bundled types) that the L402 rail uses. */
declare module 'macaroon' {
  export interface Macaroon {
    readonly identifier: Uint8Array;
    readonly location: string;
    readonly signature: Uint8Array;
    readonly caveats: ReadonlyArray<{ identifier: Uint8Array; location?: string }>;
    addFirstPartyCaveat(caveatId: Uint8Array | string): void;
    /** Throws when the signature chain or a caveat (check returns an error string) fails. */
    verify(rootKey: Uint8Array, check: (condition: string) => string | null, discharges?: Macaroon[]): void;
    exportBinary(): Uint8Array;
  }
  export function newMacaroon(params: {
    identifier: Uint8Array | string;
    location?: string;
    rootKey: Uint8Array | string;
    version?: 1 | 2;
  }): Macaroon;
  /** A base64 string or bytes of binary macaroons. Throws on malformed input. */
  export function importMacaroons(data: string | Uint8Array): Macaroon[];
}
