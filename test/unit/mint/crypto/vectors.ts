/**
 * Reads the Cashu spec test vectors (../shared/vectors/cashu/ beside the repository) at test time,
 * so every vector in the files is exercised and nothing is transcribed by hand.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
export const VECTORS_DIR = path.resolve(repoRoot, '..', 'shared', 'vectors', 'cashu');

export interface CodeBlock {
  lang: string;
  body: string;
  /** Markdown text between the previous block (or heading) and this one: what the vector means. */
  before: string;
  /** The nearest headings above, outermost first. */
  headings: string[];
}

export function readVectorFile(name: string): string {
  return readFileSync(path.join(VECTORS_DIR, name), 'utf8');
}

/** Fenced code blocks of a Markdown file, each with the prose and headings before it. */
export function codeBlocks(markdown: string): CodeBlock[] {
  const blocks: CodeBlock[] = [];
  const lines = markdown.split('\n');
  const headings: string[] = [];
  let before: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    const heading = /^(#+)\s+(.*)$/.exec(line);
    if (heading) {
      const level = (heading[1] ?? '#').length;
      headings.length = Math.max(0, level - 1);
      headings[level - 1] = heading[2] ?? '';
      before = [];
      continue;
    }
    const fence = /^```(\w*)\s*$/.exec(line);
    if (!fence) {
      before.push(line);
      continue;
    }
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i] ?? ''); i++) body.push(lines[i] ?? '');
    blocks.push({
      lang: fence[1] ?? '',
      body: body.join('\n'),
      before: before.join('\n').trim(),
      headings: headings.filter((h) => h !== undefined),
    });
    before = [];
  }
  return blocks;
}

/** `Key: value` pairs of a shell block, `# comments` stripped, quotes removed, in order. */
export function keyValues(body: string): [string, string][] {
  const out: [string, string][] = [];
  for (const raw of body.split('\n')) {
    const line = raw.replace(/\s+#.*$/, '').trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([^:]+):\s*(.*)$/.exec(line);
    if (!m) continue;
    out.push([(m[1] ?? '').trim().replace(/^"|"$/g, ''), (m[2] ?? '').trim().replace(/^"|"$/g, '')]);
  }
  return out;
}

/** Groups key/value pairs into records, starting a new record whenever a key repeats. */
export function records(pairs: [string, string][]): Record<string, string>[] {
  const out: Record<string, string>[] = [];
  let current: Record<string, string> = {};
  for (const [k, v] of pairs) {
    if (k in current) {
      out.push(current);
      current = {};
    }
    current[k] = v;
  }
  if (Object.keys(current).length > 0) out.push(current);
  return out;
}

/** Parses the CBOR-diagnostic-flavoured JSON of the token vectors: h'..' byte strings, trailing commas. */
export function parseDiagnosticJson(body: string): unknown {
  return JSON.parse(body.replace(/h'([0-9a-fA-F]*)'/g, '"$1"').replace(/,(\s*[}\]])/g, '$1'));
}

/** Records of a list of `- Key: `value`` bullet lines (NUT-02 V2 vectors). */
export function bulletValues(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^-\s*([^:]+):\s*`?([^`]*)`?\s*$/.exec(line.trim());
    if (m) out[(m[1] ?? '').trim()] = (m[2] ?? '').trim();
  }
  return out;
}
