/**
 * The coding matrices of @ronomon/reed-solomon, rebuilt step for step so the
 * portable codec writes the same parity bytes as the native one.
 *
 * The native library is not a Vandermonde/GF(2^8) table code (Backblaze
 * style): it is a Cauchy Reed–Solomon code in bit-matrix form (Jerasure's
 * "bitmatrix" technique). Each GF(2^w) coefficient becomes a w×w matrix over
 * GF(2), each shard is cut into w equal chunks (bit planes, in effect), and a
 * parity chunk is the XOR of the data chunks whose bit is set. Field width,
 * polynomial and Cauchy offsets are picked per geometry to minimise the ones
 * (`parameters.ts`). Row 0 is always all ones, so parity 0 is the plain XOR of
 * the data shards; the single-loss repair path relies on that.
 *
 * Bit matrices are Uint8Arrays of 0/1, row-major. The encoding bit matrix has
 * m·w rows and k·w columns: row r·w + b yields chunk b of parity r, column
 * c·w + a reads chunk a of data shard c (the native layout, byte for byte).
 */
import { assert } from '../util/assert.ts';
import { GaloisField } from './galois-field.ts';
import { codeParameters } from './parameters.ts';

export interface CodingMatrices {
  readonly field: GaloisField;
  /** m×k coefficients over GF(2^w), row-major. */
  readonly coefficients: Uint8Array;
  /** (m·w)×(k·w) bits, row-major. */
  readonly encoding: Uint8Array;
}

export function buildCodingMatrices(dataShards: number, parityShards: number): CodingMatrices {
  const parameters = codeParameters(dataShards, parityShards);
  const field = new GaloisField(parameters.width, parameters.polynomial);
  const { coefficients, ones } = buildCoefficients(field, dataShards, parityShards, parameters.columnOffset, parameters.rowOffset);
  // The native create() asserts the same count; a mismatch means we built another code.
  assert(ones === parameters.bitMatrixOnes, `coefficient ones ${ones} != ${parameters.bitMatrixOnes} for ${dataShards}+${parityShards}`);
  const encoding = expandToBits(field, coefficients, dataShards, parityShards);
  assert(countOnes(encoding) === parameters.bitMatrixOnes, 'bit matrix ones differ from the parameter table');
  assertFirstRowIsIdentity(encoding, dataShards, field.width);
  return { field, coefficients, encoding };
}

/** Port of `create_matrix()`: returns the coefficients and their bit-matrix ones. */
function buildCoefficients(
  field: GaloisField,
  dataShards: number,
  parityShards: number,
  columnOffset: number,
  rowOffset: number,
): { coefficients: Uint8Array; ones: number } {
  const k = dataShards;
  const matrix = new Uint8Array(parityShards * k);
  let ones = field.bitMatrixOnes(1) * k;
  // Row 0 is all ones in every geometry: parity 0 is the XOR of the data.
  matrix.fill(1, 0, k);
  if (parityShards === 2) {
    // Row 1 takes the k cheapest distinct non-zero elements (any two columns
    // [1 a; 1 b] with a ≠ b are independent, so the code stays MDS).
    const cheapest = elementsByOnes(field);
    for (let c = 0; c < k; c++) {
      matrix[k + c] = cheapest[c + 1]!;
      ones += field.bitMatrixOnes(matrix[k + c]!);
    }
    assert(matrix[k] === 1, 'the cheapest non-zero element is 1');
  } else if (parityShards > 2) {
    ones += buildCauchyRows(field, matrix, k, parityShards, columnOffset, rowOffset);
  }
  return { coefficients: matrix, ones };
}

/**
 * Cauchy matrix 1/((y + r) xor (x + c)), normalised so row 0 is all ones,
 * then each later row divided by the entry that minimises its ones. Returns
 * the ones of rows 1..m-1.
 */
function buildCauchyRows(
  field: GaloisField,
  matrix: Uint8Array,
  k: number,
  parityShards: number,
  columnOffset: number,
  rowOffset: number,
): number {
  assert(columnOffset >= 0 && rowOffset >= 0, 'Cauchy offsets are set for m > 2');
  for (let r = 0; r < parityShards; r++) {
    for (let c = 0; c < k; c++) matrix[r * k + c] = field.divide(1, (rowOffset + r) ^ (columnOffset + c));
  }
  for (let r = 1; r < parityShards; r++) {
    for (let c = 0; c < k; c++) matrix[r * k + c] = field.divide(matrix[r * k + c]!, matrix[c]!);
  }
  matrix.fill(1, 0, k);
  let ones = 0;
  for (let r = 1; r < parityShards; r++) ones += minimiseRowOnes(field, matrix.subarray(r * k, (r + 1) * k));
  return ones;
}

/** Divides `row` by the entry that leaves the fewest ones, as the native code does; returns the ones. */
function minimiseRowOnes(field: GaloisField, row: Uint8Array): number {
  let best = 0;
  for (const element of row) best += field.bitMatrixOnes(element);
  let divisor = -1;
  for (const candidate of row) {
    let ones = 0;
    for (const element of row) ones += field.bitMatrixOnes(field.divide(element, candidate));
    if (ones < best) {
      best = ones;
      divisor = candidate;
    }
  }
  if (divisor >= 0) for (let c = 0; c < row.length; c++) row[c] = field.divide(row[c]!, divisor);
  return best;
}

/** Port of the native `min` table: elements ordered by bit-matrix ones, then by value; [0] is 0. */
function elementsByOnes(field: GaloisField): number[] {
  const elements = Array.from({ length: field.size }, (_, element) => element);
  return elements.sort((a, b) => field.bitMatrixOnes(a) - field.bitMatrixOnes(b) || a - b);
}

/** Port of `create_bitmatrix_encoding()`: coefficient x at (r, c) becomes bits of x·2^a in column c·w + a. */
function expandToBits(field: GaloisField, coefficients: Uint8Array, k: number, parityShards: number): Uint8Array {
  const w = field.width;
  const columns = k * w;
  const bits = new Uint8Array(parityShards * w * columns);
  for (let r = 0; r < parityShards; r++) {
    for (let c = 0; c < k; c++) {
      let element = coefficients[r * k + c]!;
      for (let a = 0; a < w; a++) {
        for (let b = 0; b < w; b++) bits[(r * w + b) * columns + c * w + a] = (element >> b) & 1;
        element = field.multiply(element, 2);
      }
    }
  }
  return bits;
}

function assertFirstRowIsIdentity(encoding: Uint8Array, k: number, w: number): void {
  const columns = k * w;
  for (let b = 0; b < w; b++) {
    for (let column = 0; column < columns; column++) {
      const expected = column % w === b ? 1 : 0;
      assert(encoding[b * columns + column] === expected, 'parity row 0 must be the identity in every data column');
    }
  }
}

/**
 * Port of `create_bitmatrix_decoding()`: the (k·w)×(k·w) matrix that maps the
 * k source shards (ascending shard indices, data or parity) back to the k data
 * shards. Rows i·w..i·w+w-1 give data shard i; column a·w + c reads chunk c of
 * source a. Any k shards of an MDS code are independent, so the inverse exists.
 */
export function buildDecodingMatrix(encoding: Uint8Array, k: number, w: number, sources: readonly number[]): Uint8Array {
  assert(sources.length === k, 'decoding needs exactly k sources');
  const size = k * w;
  const system = new Uint8Array(size * size);
  sources.forEach((shard, position) => {
    if (shard < k) {
      // A present data shard: identity rows selecting that shard's chunks.
      for (let b = 0; b < w; b++) system[(position * w + b) * size + shard * w + b] = 1;
    } else {
      const parityRows = encoding.subarray((shard - k) * w * size, (shard - k + 1) * w * size);
      system.set(parityRows, position * w * size);
    }
  });
  return invertOverGf2(system, size);
}

/** Gauss–Jordan elimination over GF(2); asserts the matrix is invertible. */
export function invertOverGf2(matrix: Uint8Array, size: number): Uint8Array {
  assert(matrix.length === size * size, 'square matrix expected');
  const work = matrix.slice();
  const inverse = new Uint8Array(size * size);
  for (let i = 0; i < size; i++) inverse[i * size + i] = 1;
  for (let column = 0; column < size; column++) {
    let pivot = column;
    while (pivot < size && work[pivot * size + column] === 0) pivot++;
    assert(pivot < size, 'decoding matrix is singular: the code is not MDS for this source set');
    if (pivot !== column) {
      swapRows(work, size, pivot, column);
      swapRows(inverse, size, pivot, column);
    }
    for (let row = 0; row < size; row++) {
      if (row === column || work[row * size + column] === 0) continue;
      xorRow(work, size, column, row);
      xorRow(inverse, size, column, row);
    }
  }
  return inverse;
}

function swapRows(matrix: Uint8Array, size: number, a: number, b: number): void {
  const rowA = matrix.slice(a * size, (a + 1) * size);
  matrix.copyWithin(a * size, b * size, (b + 1) * size);
  matrix.set(rowA, b * size);
}

function xorRow(matrix: Uint8Array, size: number, source: number, target: number): void {
  for (let i = 0; i < size; i++) matrix[target * size + i]! ^= matrix[source * size + i]!;
}

function countOnes(bits: Uint8Array): number {
  let ones = 0;
  for (const bit of bits) ones += bit;
  return ones;
}
