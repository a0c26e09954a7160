/**
 * Sizes and durations as people type them ('4KiB', '4KiB-10MiB', '10s'), and
 * the size of each generated object.
 */
import { parseSize } from '../util/byte-size.ts';
import type { SizeRange } from './types.ts';

export { parseSize };

/** '4KiB' (fixed) or '4KiB-10MiB' (a range, both ends included). */
export function parseSizeRange(text: string): SizeRange {
  const parts = text.split('-');
  if (parts.length === 1) {
    const size = parseSize(text);
    return { min: size, max: size };
  }
  if (parts.length !== 2) throw new RangeError(`invalid size range ${JSON.stringify(text)} (examples: 4KiB, 4KiB-10MiB)`);
  const min = parseSize(parts[0]!);
  const max = parseSize(parts[1]!);
  if (min > max) throw new RangeError(`size range ${JSON.stringify(text)} ends below its start`);
  return { min, max };
}

const DURATION_PART = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy;
const DURATION_UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** '500ms', '10s', '2m', '1h', or several ('1m30s') -> milliseconds. A bare number is refused (which unit?). */
export function parseDuration(text: string): number {
  const trimmed = text.trim();
  let ms = 0;
  let end = 0;
  DURATION_PART.lastIndex = 0;
  for (let match = DURATION_PART.exec(trimmed); match !== null; match = DURATION_PART.exec(trimmed)) {
    ms += Number(match[1]) * DURATION_UNIT_MS[match[2]!]!;
    end = DURATION_PART.lastIndex;
  }
  if (trimmed === '' || end !== trimmed.length) throw new RangeError(`invalid duration ${JSON.stringify(text)} (examples: 500ms, 10s, 2m, 1m30s)`);
  return Math.round(ms);
}

/** '4 KiB', '1.5 MiB': for reports. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  const text = Number.isInteger(value) ? String(value) : value.toFixed(value < 10 ? 2 : 1);
  return `${text} ${units[unit]}`;
}

export function formatSizeRange(range: SizeRange): string {
  return range.min === range.max ? formatBytes(range.min) : `${formatBytes(range.min)}-${formatBytes(range.max)}`;
}

/**
 * The size of object `id`, a pure function of (range, id) so that every
 * object's size is known without storing it (reads check it). Sizes are
 * log-uniform over the range, as warp's random sizes are: a range of
 * 4KiB-10MiB gives as many objects below 200 KiB as above, instead of
 * mostly multi-MiB ones.
 */
export function sizeOfObject(range: SizeRange, id: number): number {
  if (range.min === range.max) return range.min;
  const unit = hashToUnit(id);
  const low = Math.log(range.min + 1);
  const high = Math.log(range.max + 2);
  const size = Math.floor(Math.exp(low + unit * (high - low))) - 1;
  return Math.min(range.max, Math.max(range.min, size));
}

/** A well-mixed number in [0, 1) from an integer (murmur3's finalizer over both 32-bit halves). */
export function hashToUnit(id: number): number {
  let h = (id >>> 0) ^ Math.imul(Math.floor(id / 2 ** 32), 0x9e3779b1);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) / 2 ** 32;
}
