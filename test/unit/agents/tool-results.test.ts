import { describe, expect, it } from 'vitest';
import { AGENT_OUTPUT_CHARS, forAgent } from '../../../src/agents/tool-results.js';

/** An exec's output as an agent gets it: cut to AGENT_OUTPUT_CHARS per stream, and still text. */
describe('forAgent', () => {
  it('passes output within the bound untouched', () => {
    const body = { exit_code: 0, stdout: 'hi\n', stderr: '', truncated: false };
    expect(forAgent(body)).toBe(body);
  });

  it('cuts each stream at the bound and says so', () => {
    const out = forAgent({
      exit_code: 0,
      stdout: 'a'.repeat(AGENT_OUTPUT_CHARS + 5),
      stderr: 'e',
      truncated: false,
    });
    expect(out).toEqual({
      exit_code: 0,
      stdout: 'a'.repeat(AGENT_OUTPUT_CHARS),
      stderr: 'e',
      truncated: true,
    });
  });

  it('never splits an emoji (a surrogate pair) at the cut', () => {
    // The pair's first half is the last character inside the bound.
    const stdout = `${'a'.repeat(AGENT_OUTPUT_CHARS - 1)}😀tail`;
    const out = forAgent({ exit_code: 0, stdout, stderr: '', truncated: false });
    expect(out.stdout).toBe('a'.repeat(AGENT_OUTPUT_CHARS - 1));
    expect(JSON.stringify(out)).not.toMatch(/\\ud83d/);
    // Whole pairs inside the bound stay.
    const whole = forAgent({
      exit_code: 0,
      stdout: `${'a'.repeat(AGENT_OUTPUT_CHARS - 2)}😀tail`,
      stderr: '',
    });
    expect(whole.stdout).toBe(`${'a'.repeat(AGENT_OUTPUT_CHARS - 2)}😀`);
  });
});
