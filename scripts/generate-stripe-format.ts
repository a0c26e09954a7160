/**
 * Writes test/fixtures/stripe-format.json: the shard objects the current code
 * produces for fixed inputs. Run once, when the format is created on purpose
 * (node --import tsx scripts/generate-stripe-format.ts); the test only reads it.
 */
import { writeFile } from 'node:fs/promises';
import { STRIPE_FORMAT_CASES, writeFormatCase } from '../test/helpers/stripe-format-cases.ts';

const cases = [];
for (const testCase of STRIPE_FORMAT_CASES) cases.push({ ...testCase, ...(await writeFormatCase(testCase, 'portable')) });
await writeFile(new URL('../test/fixtures/stripe-format.json', import.meta.url), `${JSON.stringify({ formatVersion: 1, cases }, null, 2)}\n`);
