import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** The shared Cashu test vectors sit beside the repository: ../shared/vectors/cashu. */
export const VECTORS_DIR = resolve(import.meta.dirname, '..', '..', '..', 'shared', 'vectors', 'cashu');

export function readVectorFile(name: string): string {
  return readFileSync(join(VECTORS_DIR, name), 'utf8');
}

/** Every fenced code block of a vector file, in order, with its info string (json, or empty). */
export function codeBlocks(markdown: string): Array<{ lang: string; body: string }> {
  const blocks: Array<{ lang: string; body: string }> = [];
  const fence = /```([a-z]*)\n([\s\S]*?)```/g;
  for (let m = fence.exec(markdown); m; m = fence.exec(markdown))
    blocks.push({ lang: m[1] ?? '', body: (m[2] ?? '').trim() });
  return blocks;
}
