/**
 * Parses a lease duration as people write it: `600s`, `90m`, `2h`, `1d`, combinations such as
 * `1h30m`, or a bare number of seconds. Returns whole seconds, or undefined when it is not one.
 */
const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };
const MAX_SECONDS = 10 * 365 * 86_400;

export function parseDuration(text: string): number | undefined {
  const input = text.trim().toLowerCase();
  if (/^[0-9]{1,9}$/.test(input)) return positive(Number(input));
  if (!/^([0-9]{1,9}[smhdw])+$/.test(input)) return undefined;
  let total = 0;
  const seen = new Set<string>();
  for (const m of input.matchAll(/([0-9]{1,9})([smhdw])/g)) {
    const unit = m[2] ?? '';
    if (seen.has(unit)) return undefined;
    seen.add(unit);
    total += Number(m[1]) * (UNIT_SECONDS[unit] ?? 0);
  }
  return positive(total);
}

function positive(n: number): number | undefined {
  return Number.isSafeInteger(n) && n > 0 && n <= MAX_SECONDS ? n : undefined;
}

/** `7260` → `2h 1m`, for people reading how long a lease has left. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const parts = [d ? `${d}d` : '', h ? `${h}h` : '', m ? `${m}m` : ''].filter(Boolean);
  if (!d && !h && s % 60) parts.push(`${s % 60}s`);
  return parts.join(' ');
}
