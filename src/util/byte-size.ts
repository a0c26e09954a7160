/** Byte counts as people type them in flags and config files. */

const UNIT_BYTES: Readonly<Record<string, number>> = {
  '': 1,
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  k: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tib: 1024 ** 4,
};

const SIZE = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/;

/**
 * '4096', '4KiB', '10MiB', '1GiB' (binary), '4KB', '10MB' (decimal); a bare
 * K/M/G/T means the binary unit. The result must be a whole number of bytes.
 */
export function parseSize(text: string): number {
  const match = SIZE.exec(text);
  const unit = match === null ? undefined : UNIT_BYTES[match[2]!.toLowerCase()];
  if (match === null || unit === undefined) throw new RangeError(`invalid size ${JSON.stringify(text)} (examples: 4096, 4KiB, 10MiB, 1GiB, 4KB)`);
  const bytes = Number(match[1]) * unit;
  if (!Number.isSafeInteger(bytes)) throw new RangeError(`size ${JSON.stringify(text)} is not a whole number of bytes (or too large)`);
  return bytes;
}
