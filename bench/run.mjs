#!/usr/bin/env node
// Runs every benchmark program under bench/ (files named *.bench.mjs), one after another so they do
// not disturb each other, echoes what they print and collects their Markdown into bench/RESULTS.md.
// With arguments, only the programs whose file name contains one of them (`node bench/run.mjs load`),
// and their sections replace the same sections of bench/RESULTS.md.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const only = process.argv.slice(2);
const programs = readdirSync(here)
  .filter((f) => f.endsWith('.bench.mjs'))
  .filter((f) => only.length === 0 || only.some((o) => f.includes(o)))
  .sort();

const sections = [];
let failed = false;
for (const program of programs) {
  console.log(`\n== ${program}`);
  const run = spawnSync(process.execPath, [join(here, program)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  process.stdout.write(run.stdout ?? '');
  if (run.status !== 0) {
    failed = true;
    sections.push(`## ${program}\n\nFAILED (exit ${run.status})\n`);
  } else {
    sections.push(run.stdout.trim());
  }
}

const resultsFile = join(here, 'RESULTS.md');
if (only.length > 0 && existsSync(resultsFile)) {
  // A subset run (`node bench/run.mjs load idle`): its sections replace those of the same heading
  // in RESULTS.md (or are added), and the rest of the file stays as the last full run wrote it.
  const text = readFileSync(resultsFile, 'utf8');
  const parts = text.split(/^(?=## )/m);
  for (const section of sections) {
    const heading = section.split('\n')[0];
    const at = parts.findIndex((p) => p.split('\n')[0] === heading);
    if (at >= 0) parts[at] = `${section}\n\n`;
    else parts.push(`${section}\n\n`);
  }
  const stamp = `Sections of ${programs.join(', ')} rerun on ${new Date().toISOString()} (\`node bench/run.mjs ${only.join(' ')}\`).`;
  // One note of the last subset run, not one per run.
  const top = parts[0]
    .split('\n')
    .filter((line) => !line.startsWith('Sections of '))
    .join('\n');
  parts[0] = `${top.trimEnd()}\n${stamp}\n\n`;
  writeFileSync(resultsFile, `${parts.join('').trimEnd()}\n`);
  console.log('\nupdated bench/RESULTS.md');
  process.exit(failed ? 1 : 0);
}

const header = [
  '# Benchmark results',
  '',
  `Written by \`npm run bench\` on ${new Date().toISOString()}: ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown'}), ` +
    `${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}. Compare ratios within one run; absolute times are noisy here.`,
  '',
  'Profiles and step-by-step before/after measurements (hand-written, not rewritten here): bench/PROFILES.md.',
  '',
].join('\n');
writeFileSync(resultsFile, `${header}\n${sections.join('\n\n')}\n`);
console.log('\nwrote bench/RESULTS.md');
process.exit(failed ? 1 : 0);
