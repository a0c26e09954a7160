/**
 * The code parameters of each geometry (k data + m parity shards), copied
 * verbatim from @ronomon/reed-solomon 6.0.0 (`PARAMETERS` in binding.c, MIT
 * licence, found offline by its `search()`): for every k ≤ 24, m ≤ 6 the
 * field width, primitive polynomial and Cauchy offsets whose bit matrix has
 * the fewest ones, i.e. the fewest XORs per byte. The portable codec must use
 * these same numbers to produce the native library's parity bytes; the test
 * compares its bit matrices against the native `create()` output for all 144
 * geometries.
 */
import { assert } from '../util/assert.ts';
import type { FieldWidth } from './galois-field.ts';

export const DATA_SHARDS_MAX = 24;
export const PARITY_SHARDS_MAX = 6;

export interface CodeParameters {
  readonly width: FieldWidth;
  readonly polynomial: number;
  /** Cauchy column offset; -1 when m ≤ 2 (those rows are built otherwise). */
  readonly columnOffset: number;
  /** Cauchy row offset; -1 when m ≤ 2. */
  readonly rowOffset: number;
  /** Ones in the resulting bit matrix, a checksum of the construction. */
  readonly bitMatrixOnes: number;
}

type Row = readonly [width: FieldWidth, polynomial: number, columnOffset: number, rowOffset: number, ones: number];

/** TABLE[k - 1][m - 1]. */
const TABLE: readonly (readonly Row[])[] = [
  /* k= 1 */ [[2,  7, -1, -1,   2], [2,  7, -1, -1,   4], [2,  7,  0,  1,   6], [4, 19,  0,  1,  16], [4, 19,  0,  1,  20], [4, 19,  0,  1,  24]],
  /* k= 2 */ [[2,  7, -1, -1,   4], [2,  7, -1, -1,   9], [4, 19,  0,  4,  28], [4, 19,  0,  5,  40], [4, 19,  2,  9,  51], [4, 19,  4, 10,  62]],
  /* k= 3 */ [[2,  7, -1, -1,   6], [4, 19, -1, -1,  26], [4, 19,  0,  9,  44], [4, 19,  1,  8,  63], [4, 19,  1,  9,  82], [4, 19,  0,  9, 101]],
  /* k= 4 */ [[4, 19, -1, -1,  16], [4, 19, -1, -1,  36], [4, 19,  0,  9,  63], [4, 19,  3, 11,  89], [4, 19,  3, 11, 116], [4, 19, 11,  4, 145]],
  /* k= 5 */ [[4, 19, -1, -1,  20], [4, 19, -1, -1,  47], [4, 19,  4, 13,  82], [4, 19,  3, 12, 118], [4, 19,  0,  9, 152], [4, 19,  0,  9, 185]],
  /* k= 6 */ [[4, 19, -1, -1,  24], [4, 19, -1, -1,  58], [4, 19,  2, 12, 102], [4, 19,  2, 12, 144], [4, 19,  0,  9, 186], [4, 19,  0,  9, 231]],
  /* k= 7 */ [[4, 19, -1, -1,  28], [4, 19, -1, -1,  71], [4, 19,  1, 13, 123], [4, 19,  2, 12, 174], [4, 19,  0,  9, 226], [4, 19,  7,  0, 277]],
  /* k= 8 */ [[4, 19, -1, -1,  32], [4, 19, -1, -1,  84], [4, 19,  2, 13, 142], [4, 19,  2, 12, 205], [4, 19,  0,  9, 265], [4, 19,  0,  8, 328]],
  /* k= 9 */ [[4, 19, -1, -1,  36], [4, 19, -1, -1,  97], [4, 19,  1, 13, 162], [4, 19,  2, 12, 237], [4, 19,  0,  9, 308], [4, 19,  1, 10, 376]],
  /* k=10 */ [[4, 19, -1, -1,  40], [4, 19, -1, -1, 111], [4, 19,  1, 13, 186], [4, 19,  0, 12, 268], [4, 19,  0, 11, 347], [4, 19,  0, 10, 426]],
  /* k=11 */ [[4, 19, -1, -1,  44], [4, 19, -1, -1, 125], [4, 19,  0, 13, 211], [4, 19,  0, 12, 300], [4, 19,  0, 11, 390], [8,135, 58,188,1401]],
  /* k=12 */ [[4, 19, -1, -1,  48], [4, 19, -1, -1, 139], [4, 19,  3,  0, 234], [4, 19,  0, 12, 334], [8,113, 24,208,1269], [8,135, 57,188,1577]],
  /* k=13 */ [[4, 19, -1, -1,  52], [4, 19, -1, -1, 155], [4, 19,  0, 13, 261], [8,135, 59,189,1037], [8,113, 27,236,1393], [8,113, 27,236,1733]],
  /* k=14 */ [[4, 19, -1, -1,  56], [4, 19, -1, -1, 171], [8,169,  4,252, 777], [8,135, 58,189,1121], [8,135, 58,189,1508], [8,135, 58,188,1880]],
  /* k=15 */ [[4, 19, -1, -1,  60], [8,135, -1, -1, 353], [8,113, 24,209, 836], [8,135, 58,189,1225], [8,101, 28,232,1644], [8,113,120,241,2037]],
  /* k=16 */ [[8, 29, -1, -1, 128], [8,135, -1, -1, 380], [8,113, 22,213, 901], [8,113, 22,212,1324], [8,101, 28,232,1765], [8,101, 28,232,2195]],
  /* k=17 */ [[8, 29, -1, -1, 136], [8,135, -1, -1, 407], [8,113, 22,213, 960], [8,135, 58,189,1423], [8,101, 27,232,1880], [8,101, 27,232,2343]],
  /* k=18 */ [[8, 29, -1, -1, 144], [8,135, -1, -1, 434], [8,113, 24,213,1027], [8,113, 22,212,1513], [8,195,  8, 32,2019], [8,113,205,126,2500]],
  /* k=19 */ [[8, 29, -1, -1, 152], [8,135, -1, -1, 462], [8,113, 22,213,1086], [8,113, 23,212,1604], [8,195,  7, 32,2131], [8,195,  3, 60,2654]],
  /* k=20 */ [[8, 29, -1, -1, 160], [8,135, -1, -1, 490], [8,113, 22,213,1147], [8,113, 22,212,1695], [8,195,  4,238,2270], [8,113, 21,233,2816]],
  /* k=21 */ [[8, 29, -1, -1, 168], [8,135, -1, -1, 518], [8,113, 21,213,1225], [8,113, 21,212,1801], [8,195,  3, 60,2395], [8,195,  3, 60,2980]],
  /* k=22 */ [[8, 29, -1, -1, 176], [8,135, -1, -1, 546], [8,113, 20,213,1292], [8,113, 21,212,1906], [8,195, 35, 28,2512], [8,195,  3, 60,3135]],
  /* k=23 */ [[8, 29, -1, -1, 184], [8,135, -1, -1, 574], [8,113, 19,213,1366], [8,113, 19,212,2008], [8,195,  3,238,2652], [8,113,205,126,3291]],
  /* k=24 */ [[8, 29, -1, -1, 192], [8,135, -1, -1, 603], [8,113, 18,213,1437], [8,195,125, 91,2110], [8,195,  3,238,2787], [8,195, 42,225,3466]],
];

assert(TABLE.length === DATA_SHARDS_MAX, 'one parameter row per k');
for (const row of TABLE) assert(row.length === PARITY_SHARDS_MAX, 'one parameter entry per m');

export function codeParameters(dataShards: number, parityShards: number): CodeParameters {
  const row = TABLE[dataShards - 1]?.[parityShards - 1];
  assert(row !== undefined, `no code parameters for ${dataShards}+${parityShards}`);
  const [width, polynomial, columnOffset, rowOffset, bitMatrixOnes] = row;
  return { width, polynomial, columnOffset, rowOffset, bitMatrixOnes };
}
