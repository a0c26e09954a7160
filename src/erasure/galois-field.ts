/**
 * Arithmetic in GF(2^w) for the field widths the codec uses (w = 2, 4 or 8),
 * built from log/exp tables exactly as @ronomon/reed-solomon's
 * `create_tables()` builds them, so both implementations derive the same
 * coding matrix. The tables serve only matrix construction (a few hundred
 * operations per codec); encoding never multiplies, it only XORs (see
 * `matrix.ts` for why).
 */
import { assert } from '../util/assert.ts';

export type FieldWidth = 2 | 4 | 8;

export class GaloisField {
  readonly width: FieldWidth;
  /** Number of field elements, 2^w. */
  readonly size: number;
  /** Multiplicative group order, 2^w - 1: logarithms live in [0, order). */
  readonly order: number;
  readonly #log: Uint8Array;
  readonly #exp: Uint8Array;

  /**
   * `polynomial` is the primitive polynomial's low bits as the native table
   * lists it (19 = x^4 + x + 1 for w = 4, 29 = 0x11D without x^8 for w = 8);
   * a set x^w bit is masked off either way.
   */
  constructor(width: FieldWidth, polynomial: number) {
    this.width = width;
    this.size = 1 << width;
    this.order = this.size - 1;
    this.#log = new Uint8Array(this.size).fill(this.order);
    this.#exp = new Uint8Array(this.size);
    let element = 1;
    for (let logarithm = 0; logarithm < this.order; logarithm++) {
      // Seeing an element twice means the polynomial is not primitive.
      assert(this.#log[element] === this.order, `polynomial ${polynomial} is not primitive in GF(2^${width})`);
      this.#log[element] = logarithm;
      this.#exp[logarithm] = element;
      element <<= 1;
      if (element & this.size) element = (element ^ polynomial) & this.order;
    }
    assert(element === 1, `polynomial ${polynomial} does not generate GF(2^${width})`);
  }

  multiply(a: number, b: number): number {
    this.#assertElement(a);
    this.#assertElement(b);
    if (a === 0 || b === 0) return 0;
    return this.#exp[(this.#log[a]! + this.#log[b]!) % this.order]!;
  }

  divide(a: number, b: number): number {
    this.#assertElement(a);
    this.#assertElement(b);
    assert(b !== 0, 'division by zero in GF(2^w)');
    if (a === 0) return 0;
    return this.#exp[(this.#log[a]! + this.order - this.#log[b]!) % this.order]!;
  }

  /**
   * Ones in the w×w bit matrix that multiplies by `element` (column j is
   * element·2^j): the XOR cost of one coefficient, which the native library
   * minimises when it normalises its matrix.
   */
  bitMatrixOnes(element: number): number {
    this.#assertElement(element);
    let ones = 0;
    let column = element;
    for (let j = 0; j < this.width; j++) {
      ones += popcount(column);
      column = this.multiply(column, 2);
    }
    return ones;
  }

  #assertElement(value: number): void {
    assert(Number.isInteger(value) && value >= 0 && value < this.size, `${value} is not an element of GF(2^${this.width})`);
  }
}

function popcount(value: number): number {
  let count = 0;
  for (let rest = value; rest !== 0; rest &= rest - 1) count++;
  return count;
}
