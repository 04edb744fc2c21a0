import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nativeRequest } from '../../../src/drivers/crun/exec-agent.js';
import { NATIVE_AGENT_BUILD } from '../../../src/drivers/crun/host-setup.js';

/**
 * The native exec agent (native/exec-agent.c) on its own, outside any sandbox: its protocol's
 * FIFOs in a temporary run directory, requests written as the node writes them. What an exec whose
 * request cannot be run sees: its exit status and, on its own stderr, why (a request the agent
 * could not read or parse ended 126 with nothing said).
 */
const skip = existsSync(NATIVE_AGENT_BUILD) ? undefined : 'the native agent is not built (scripts/setup.sh)';

let dir = '';
let agent: ChildProcess | undefined;
let answers = '';
let answerReader: ChildProcess | undefined;
/** The `cat`s reading exec FIFOs, killed once read (or in afterAll, should a test fail first). */
const readers: ChildProcess[] = [];

beforeAll(() => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'alacarte-agent-'));
  mkdirSync(join(dir, 'x'));
  execFileSync('mkfifo', [join(dir, 'exec-in'), join(dir, 'agent-out')]);
  agent = spawn(NATIVE_AGENT_BUILD, [dir], { stdio: 'ignore' });
  // The agent holds its answer FIFO read-write: `cat` reads it for as long as the test runs.
  answerReader = spawn('cat', [join(dir, 'agent-out')], { stdio: ['ignore', 'pipe', 'ignore'] });
  answerReader.stdout?.on('data', (chunk: Buffer) => {
    answers += chunk.toString();
  });
});

afterAll(() => {
  agent?.kill('SIGKILL');
  answerReader?.kill('SIGKILL');
  for (const cat of readers) cat.kill('SIGKILL');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Runs one exec whose request file holds `request`; its status and what its stdout and stderr got. */
async function execWith(
  id: string,
  request: Buffer | string,
): Promise<{ status: string; stdout: string; stderr: string }> {
  const base = join(dir, 'x', id);
  execFileSync('mkfifo', [`${base}.out`, `${base}.err`]);
  writeFileSync(base, request);
  // `cat` opens each FIFO (blocking until the agent does) and reads it to its end: no thread of
  // this process waits on a FIFO that may never be opened.
  const read = (path: string) =>
    new Promise<string>((resolve) => {
      const cat = spawn('cat', [path], { stdio: ['ignore', 'pipe', 'ignore'] });
      readers.push(cat);
      let text = '';
      cat.stdout.on('data', (c: Buffer) => {
        text += c.toString();
      });
      cat.on('close', () => resolve(text));
    });
  const stdout = read(`${base}.out`);
  const stderr = read(`${base}.err`);
  const requests = openSync(join(dir, 'exec-in'), 'w');
  writeFileSync(requests, `${id}\n`);
  closeSync(requests);
  const status = await new Promise<string>((resolve, reject) => {
    const give = Date.now() + 10_000;
    const look = () => {
      const m = new RegExp(`^${id} (\\d+)$`, 'm').exec(answers);
      if (m) return resolve(m[1] ?? '');
      if (Date.now() > give) return reject(new Error(`no status for ${id}: ${answers}`));
      setTimeout(look, 10);
    };
    look();
  });
  // A request that never opened stdout leaves its reader waiting: the status is what counts then.
  const opened = await Promise.race([
    stdout,
    new Promise<string>((r) => setTimeout(() => r('(never opened)'), 500)),
  ]);
  return { status, stdout: opened, stderr: await stderr };
}

describe.skipIf(skip !== undefined)(`the native exec agent's requests ${skip ?? ''}`, () => {
  it('runs a well-formed request', async () => {
    const r = await execWith(
      '00000000000a',
      nativeRequest(['PATH=/bin:/usr/bin'], '', ['echo', 'hi'], false),
    );
    expect(r).toEqual({ status: '0', stdout: 'hi\n', stderr: '' });
  });

  it('says on the exec’s stderr why a request cannot be run, and ends it 126', async () => {
    const malformed = await execWith('00000000000b', 'not a request');
    expect(malformed.status).toBe('126');
    expect(malformed.stderr).toBe("alacarte: the exec's request is malformed\n");
    // Fields missing after a valid head: the argument count promises more than is there.
    const short = await execWith(
      '00000000000c',
      Buffer.from('1\x000\x00\x00/bin\x003\x00echo\x00', 'latin1'),
    );
    expect(short.status).toBe('126');
    expect(short.stderr).toBe("alacarte: the exec's request is malformed\n");
    const missing = await execWith('00000000000d', '');
    expect(missing.status).toBe('126');
    expect(missing.stderr).toMatch(/^alacarte: the exec's request is (malformed|not one)\n$/);
  });
});
