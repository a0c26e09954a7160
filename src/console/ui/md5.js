// MD5 (RFC 1321) of bytes, as lower-case hex: S3's ETag of an uploaded part.
// Resuming a multipart upload after the page was closed checks each part the
// server holds against the same slice of the file picked again (Web Crypto
// has no MD5). Plain JavaScript over 32-bit integers; a few tens of MB/s
// even on a loaded machine: cheaper than sending the part again.

/** Per-round shift amounts. */
const SHIFTS = [7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21];
/** floor(abs(sin(i + 1)) * 2^32), as RFC 1321 defines them. */
const SINES = Int32Array.from({ length: 64 }, (_, index) => Math.floor(Math.abs(Math.sin(index + 1)) * 2 ** 32) | 0);
const BLOCK_BYTES = 64;
if (new Uint8Array(Uint32Array.of(1).buffer)[0] !== 1) throw new Error('md5.js reads words in little-endian order');

/** Mixes one 64-byte block (16 little-endian words) into state. */
function mixBlock(state, words) {
  let a = state[0];
  let b = state[1];
  let c = state[2];
  let d = state[3];
  for (let round = 0; round < 64; round++) {
    let f;
    let word;
    if (round < 16) {
      f = (b & c) | (~b & d);
      word = round;
    } else if (round < 32) {
      f = (d & b) | (~d & c);
      word = (5 * round + 1) & 15;
    } else if (round < 48) {
      f = b ^ c ^ d;
      word = (3 * round + 5) & 15;
    } else {
      f = c ^ (b | ~d);
      word = (7 * round) & 15;
    }
    const sum = (a + f + SINES[round] + words[word]) | 0;
    a = d;
    d = c;
    c = b;
    b = (b + ((sum << SHIFTS[round]) | (sum >>> (32 - SHIFTS[round])))) | 0;
  }
  state[0] = (state[0] + a) | 0;
  state[1] = (state[1] + b) | 0;
  state[2] = (state[2] + c) | 0;
  state[3] = (state[3] + d) | 0;
}

/** The MD5 of a Uint8Array, as 32 lower-case hex digits. */
export function md5Hex(bytes) {
  const state = Int32Array.of(0x67452301, 0xefcdab89 | 0, 0x98badcfe | 0, 0x10325476);
  // Words are read through an Int32Array over a copy of each block: the platform's byte order, little-endian in every browser (asserted).
  const words = new Int32Array(16);
  const wordBytes = new Uint8Array(words.buffer);
  const whole = bytes.length - (bytes.length % BLOCK_BYTES);
  for (let offset = 0; offset < whole; offset += BLOCK_BYTES) {
    wordBytes.set(bytes.subarray(offset, offset + BLOCK_BYTES));
    mixBlock(state, words);
  }
  // The tail: the last bytes, a 0x80 byte, zeros, and the length in bits (64-bit little-endian).
  const tailLength = bytes.length - whole < 56 ? BLOCK_BYTES : 2 * BLOCK_BYTES;
  const tail = new Uint8Array(tailLength);
  tail.set(bytes.subarray(whole));
  tail[bytes.length - whole] = 0x80;
  const tailView = new DataView(tail.buffer);
  tailView.setUint32(tailLength - 8, (bytes.length * 8) >>> 0, true);
  tailView.setUint32(tailLength - 4, Math.floor(bytes.length / 2 ** 29), true);
  for (let offset = 0; offset < tailLength; offset += BLOCK_BYTES) {
    for (let index = 0; index < 16; index++) words[index] = tailView.getInt32(offset + index * 4, true);
    mixBlock(state, words);
  }
  const out = new DataView(state.buffer);
  let hex = '';
  for (let index = 0; index < 16; index++) hex += out.getUint8(index).toString(16).padStart(2, '0');
  return hex;
}
