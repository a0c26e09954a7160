/**
 * Writes the shard format fixtures: the shard objects the current code
 * produces for fixed inputs. Run once per format version, when the version is
 * created on purpose (node --import tsx scripts/generate-stripe-format.ts 2);
 * the test only reads them. Version 1 (test/fixtures/stripe-format.json) is
 * stored data of older blobs: never regenerate it from changed code.
 */
import { writeFile } from 'node:fs/promises';
import { STRIPE_FORMAT_CASES, STRIPE_FORMAT_V2_CASES, writeFormatCase } from '../test/helpers/stripe-format-cases.ts';

const version = Number(process.argv[2] ?? '2');
if (version !== 1 && version !== 2) throw new Error(`no shard format version ${process.argv[2]}`);
const cases = [];
for (const testCase of version === 1 ? STRIPE_FORMAT_CASES : STRIPE_FORMAT_V2_CASES) cases.push({ ...testCase, ...(await writeFormatCase(testCase, 'portable', version)) });
const file = version === 1 ? 'stripe-format.json' : `stripe-format-v${version}.json`;
await writeFile(new URL(`../test/fixtures/${file}`, import.meta.url), `${JSON.stringify({ formatVersion: version, cases }, null, 2)}\n`);
