/**
 * Splitting a prefix's key space so it can be listed in parallel. S3 can
 * only list forward from a start-after key and never says how many keys lie
 * ahead, so the split is found by probing:
 *
 * 1. Keys are read as fractions in [0, 1): the characters after the prefix
 *    as digits over an alphabet (the ASCII characters the first page's keys
 *    use, sorted), so that fraction order is key order and a fraction maps
 *    back to a start-after string. Exact (BigInt), so keys sharing a long
 *    run (logs/2026/12/06/000…) stay apart.
 * 2. Is a split worth it? One probe (ListObjectsV2, max-keys=1,
 *    start-after = a fraction's string) as many keys above the last key
 *    listed as the split needs at least, at the first page's density: if
 *    nothing lies there, the listing stays one range (one probe spent, not
 *    31: a short listing is over before parallel ranges repay their probes).
 * 3. Where does the key space end? A round of probes at geometrically
 *    closer points above the last key listed (each a quarter of the one
 *    before), down to that first probe, all in flight at once: the lowest
 *    probe that finds nothing above it bounds the end within a factor 4 (a
 *    round that finds nothing at all zooms in and probes again). A round of
 *    uniform probes narrows that to an eighth.
 * 4. Boundaries at equal fractions between the last key listed and the end:
 *    range i lists keys in (boundary i, boundary i+1].
 *
 * The density of the first page (keys per unit of fraction) decides how many
 * ranges are worth it, and lets each range ask for just the keys it has left
 * on its last page, instead of a full page past its end.
 *
 * Boundaries are ASCII, where JavaScript's UTF-16 order and S3's UTF-8 byte
 * order agree, so comparing any key with a boundary is exact.
 */

const GEOMETRIC_PROBES = 24;
/** Rounds of geometric probes at most: 4 x 48 bits tell apart keys sharing runs of ~40 characters. */
const GEOMETRIC_ROUNDS_MAX = 4;
const REFINING_PROBES = 8;
/** Probes in flight at once at most (a round's). */
export const PROBES_IN_FLIGHT_MAX = Math.max(GEOMETRIC_PROBES, REFINING_PROBES - 1);
/** Digits kept beyond the sample's longest key: room to interpolate between neighbours. */
const EXTRA_DIGITS = 4;
/** Longest start-after string made (S3 keys are at most 1024 bytes). */
const DIGITS_MAX = 256;
/** A range shorter than this is not worth its probes and its last page's overshoot. */
export const RANGE_KEYS_MIN = 2000;
/** Keys ahead of the first page (at its density) below which the listing stays one range, by default: the least that makes two ranges. */
export const SPLIT_KEYS_MIN_DEFAULT = 2 * RANGE_KEYS_MIN;

/**
 * Keys as fractions over an alphabet, exactly: a fraction is an integer
 * numerator over alphabet-size^digits (BigInt), so keys that share a long
 * run of characters stay apart. Its strings are start-after boundaries.
 */
export class KeyFractions {
  readonly #prefix: string;
  readonly #alphabet: string;
  readonly #base: bigint;
  readonly #digits: number;
  /** base^digits: the fraction 1. */
  readonly one: bigint;

  constructor(prefix: string, sampleKeys: readonly string[]) {
    const characters = new Set<string>();
    let longest = 0;
    for (const key of sampleKeys) {
      longest = Math.max(longest, key.length - prefix.length);
      for (let i = prefix.length; i < key.length; i++) {
        if (key.charCodeAt(i) < 0x80) characters.add(key[i]!);
      }
    }
    // At least two digits; keys without ASCII after the prefix get printable ASCII.
    if (characters.size < 2) for (let code = 0x20; code < 0x7f; code++) characters.add(String.fromCharCode(code));
    this.#prefix = prefix;
    this.#alphabet = [...characters].sort().join('');
    this.#base = BigInt(this.#alphabet.length);
    this.#digits = Math.min(longest + EXTRA_DIGITS, DIGITS_MAX);
    this.one = this.#base ** BigInt(this.#digits);
  }

  /** The key's position in [0, one): each character after the prefix a digit (one outside the alphabet counts as the next lower one). */
  of(key: string): bigint {
    let fraction = 0n;
    for (let i = 0; i < this.#digits; i++) {
      const at = this.#prefix.length + i;
      fraction = fraction * this.#base + (at < key.length ? BigInt(this.#rank(key[at]!)) : 0n);
    }
    return fraction;
  }

  /** The start-after string of a fraction (monotonic: a larger fraction never gives a smaller string). */
  stringOf(fraction: bigint): string {
    let rest = fraction < 0n ? 0n : fraction >= this.one ? this.one - 1n : fraction;
    const digits: string[] = [];
    for (let i = 0; i < this.#digits; i++) {
      digits.push(this.#alphabet[Number(rest % this.#base)]!);
      rest /= this.#base;
    }
    return this.#prefix + digits.reverse().join('');
  }

  #rank(character: string): number {
    const at = this.#alphabet.indexOf(character);
    if (at !== -1) return at;
    let below = 0;
    while (below < this.#alphabet.length && this.#alphabet[below]! < character) below++;
    return Math.max(below - 1, 0);
  }
}

/** The first key after `startAfter` under the prefix, or undefined: one ListObjectsV2 with max-keys=1. */
export type Probe = (startAfter: string) => Promise<string | undefined>;

export class KeySpaceSplit {
  /** Ascending start-after boundaries: range 0 ends at boundaries[0] (inclusive), range i starts after boundaries[i-1]. */
  readonly boundaries: string[];
  readonly #fractions: KeyFractions;
  /** The first page: its keys, and the fraction they spanned. */
  readonly #sampleKeys: number;
  readonly #sampleSpan: bigint;

  constructor(boundaries: string[], fractions: KeyFractions, sampleKeys: number, sampleSpan: bigint) {
    this.boundaries = boundaries;
    this.#fractions = fractions;
    this.#sampleKeys = sampleKeys;
    this.#sampleSpan = sampleSpan;
  }

  /** About how many keys lie between two keys, at the first page's density. */
  keysBetween(from: string, to: string): number {
    const gap = this.#fractions.of(to) - this.#fractions.of(from);
    return gap <= 0n ? 0 : estimate(this.#sampleKeys, gap, this.#sampleSpan);
  }
}

/** keys x gap / span, as a number. */
function estimate(keys: number, gap: bigint, span: bigint): number {
  return Number((BigInt(keys) * gap * 1000n) / span) / 1000;
}

/**
 * Boundaries for up to `ranges` ranges of the keys after the first page
 * (`pageKeys`, in order). Undefined when one range is best (fewer than
 * `splitKeysMin` keys ahead at the first page's density, or a key space the
 * probes cannot tell apart).
 */
export async function splitKeySpace(prefix: string, pageKeys: readonly string[], ranges: number, probe: Probe, splitKeysMin = SPLIT_KEYS_MIN_DEFAULT): Promise<KeySpaceSplit | undefined> {
  if (ranges < 2 || pageKeys.length < 2) return undefined;
  const fractions = new KeyFractions(prefix, pageKeys);
  const lastKey = pageKeys.at(-1)!;
  const low = fractions.of(lastKey);
  const span = low - fractions.of(pageKeys[0]!);
  if (span <= 0n) return undefined;
  const probeAt = async (fraction: bigint): Promise<boolean> => {
    const startAfter = fractions.stringOf(fraction);
    return startAfter > lastKey && (await probe(startAfter)) !== undefined;
  };
  // Enough keys ahead to split at all? One probe says; the rounds below probe only above it.
  const least = low + (BigInt(Math.max(1, Math.ceil(splitKeysMin))) * span + BigInt(pageKeys.length) - 1n) / BigInt(pageKeys.length);
  if (least >= fractions.one || !(await probeAt(least))) return undefined;
  // Geometric rounds: found[i] says whether a key lies above low + 4^-(i+1) of the rest, down to `least`. A round
  // that finds none (keys sharing a run longer than its 48 bits tell apart) zooms into the lowest quarter-power and goes on.
  let high = fractions.one;
  let from = least;
  for (let round = 0; round < GEOMETRIC_ROUNDS_MAX; round++) {
    const geometric: bigint[] = [];
    for (let i = 0; i < GEOMETRIC_PROBES; i++) {
      const point = low + (high - low) / 4n ** BigInt(i + 1);
      if (point <= least) break;
      geometric.push(point);
    }
    if (geometric.length === 0) break;
    const found = await Promise.all(geometric.map(probeAt));
    const highestFound = found.indexOf(true);
    if (highestFound === -1) {
      high = geometric.at(-1)!;
      if (geometric.length === GEOMETRIC_PROBES) continue;
      break;
    }
    if (highestFound > 0) high = geometric[highestFound - 1]!;
    from = geometric[highestFound]!;
    break;
  }
  // Refining: the end lies in (from, high]; narrow it to an eighth.
  const refining = Array.from({ length: REFINING_PROBES - 1 }, (_, i) => from + ((high - from) * BigInt(i + 1)) / BigInt(REFINING_PROBES));
  const refined = await Promise.all(refining.map(probeAt));
  const firstEmpty = refined.indexOf(false);
  if (firstEmpty !== -1) high = refining[firstEmpty]!;
  const expectedKeys = estimate(pageKeys.length, high - low, span);
  const count = Math.min(ranges, Math.floor(expectedKeys / RANGE_KEYS_MIN));
  if (count < 2) return undefined;
  const boundaries: string[] = [];
  for (let i = 1; i < count; i++) {
    const boundary = fractions.stringOf(low + ((high - low) * BigInt(i)) / BigInt(count));
    if (boundary > lastKey && (boundaries.length === 0 || boundary > boundaries.at(-1)!)) boundaries.push(boundary);
  }
  return boundaries.length === 0 ? undefined : new KeySpaceSplit(boundaries, fractions, pageKeys.length, span);
}
