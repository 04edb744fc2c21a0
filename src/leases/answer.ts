/**
 * What a lease route answers: status, extra headers and the JSON body, exactly as API.md spells it.
 * In a module of its own so the lease service and its replays share it without an import cycle.
 */
export interface Answer {
  status: number;
  headers: Record<string, string>;
  body: Record<string, unknown>;
}
