import { describe, expect, it } from 'vitest';
import { AnswerLines } from '../../../../src/drivers/crun/answer-lines.js';

describe('AnswerLines', () => {
  it('hands out whole lines across chunks and keeps the unfinished tail', () => {
    const lines = new AnswerLines(64);
    const seen: string[] = [];
    lines.feed('1 p 4', (l) => seen.push(l));
    expect(seen).toEqual([]);
    lines.feed('2\n1 0\n2 ', (l) => seen.push(l));
    lines.feed('7\n', (l) => seen.push(l));
    expect(seen).toEqual(['1 p 42', '1 0', '2 7']);
  });

  it('drops an unfinished tail longer than the bound', () => {
    const lines = new AnswerLines(4);
    const seen: string[] = [];
    lines.feed('123456', (l) => seen.push(l));
    lines.feed('7\n8\n', (l) => seen.push(l));
    expect(seen).toEqual(['7', '8']);
  });

  it('stops handing out lines once cleared from a callback', () => {
    const lines = new AnswerLines(64);
    const seen: string[] = [];
    lines.feed('a\nb\nc\n', (l) => {
      seen.push(l);
      lines.clear();
    });
    expect(seen).toEqual(['a']);
  });
});
