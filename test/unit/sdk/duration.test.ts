import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from '../../../src/sdk/duration.js';

describe('parseDuration', () => {
  it.each([
    ['600s', 600],
    ['90m', 5400],
    ['2h', 7200],
    ['1d', 86_400],
    ['1w', 604_800],
    ['1h30m', 5400],
    ['1d2h3m4s', 93_784],
    ['3600', 3600],
    [' 2H ', 7200],
  ])('%s is %i seconds', (text, seconds) => {
    expect(parseDuration(text)).toBe(seconds);
  });

  it.each([
    '',
    '0',
    '0s',
    '-5m',
    '1.5h',
    'h',
    '2 h',
    '2hours',
    '1h1h',
    'soon',
    '99999999999',
    '4000w',
    '1e3',
  ])('refuses %j', (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0s'],
    [59, '59s'],
    [60, '1m'],
    [1800, '30m'],
    [1830, '30m 30s'],
    [7260, '2h 1m'],
    [7200, '2h'],
    [90_061, '1d 1h 1m'],
    [-3, '0s'],
  ])('%i s reads %j', (seconds, text) => {
    expect(formatDuration(seconds)).toBe(text);
  });
});
