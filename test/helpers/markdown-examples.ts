/**
 * Runs a document's examples (every ```ts example block of a file under
 * docs/) so the documentation cannot rot: each block type-checks (strict)
 * and runs as its own program against a real Talus on loopback, with its
 * `talus/*` imports pointed at src/public/. docs/LIBRARY.md and docs/TXN.md
 * use it; the document's own assertions go in `checkBlocks`.
 */
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { S3Client } from '../../src/client/s3-client.ts';
import { PROJECT_ROOT } from './process.ts';
import { ACCESS_KEY_ID, SECRET_ACCESS_KEY, startTestTalus, type TestTalus } from './talus.ts';

const run = promisify(execFile);

export interface MarkdownExample {
  /** The heading the block stands under. */
  section: string;
  code: string;
}

/** Every ```ts example block of `markdown`, in order. */
export function markdownExamples(markdown: string): MarkdownExample[] {
  const found: MarkdownExample[] = [];
  let section = '';
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.startsWith('#')) section = line.replace(/^#+\s*/, '');
    if (line.trim() !== '```ts example') continue;
    const code: string[] = [];
    for (i++; i < lines.length && lines[i]!.trim() !== '```'; i++) code.push(lines[i]!);
    found.push({ section, code: code.join('\n') });
  }
  return found;
}

export interface MarkdownExamplesSuite {
  /** The document, relative to docs/. */
  document: string;
  /** Package specifiers (`talus/storage`) and the source files they stand for. */
  exports: Readonly<Record<string, string>>;
  /** What the document must contain, asserted before anything runs. */
  checkBlocks(blocks: readonly MarkdownExample[]): void;
  timeoutMs?: number;
}

/** A node:test suite for one document: a Talus with bucket `examples`, then a type-check and one test per block. */
export async function describeMarkdownExamples(suite: MarkdownExamplesSuite): Promise<void> {
  const blocks = markdownExamples(await readFile(join(PROJECT_ROOT, 'docs', suite.document), 'utf8'));
  describe(`docs/${suite.document} examples`, { timeout: suite.timeoutMs ?? 180_000 }, () => {
    let talus: TestTalus;
    let directory: string;

    before(async () => {
      directory = await mkdtemp(join(tmpdir(), 'talus-docs-'));
      talus = await startTestTalus();
      const admin = new S3Client({ endpoint: talus.url, accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY });
      await admin.createBucket('examples');
      await admin.close();
      for (const [index, block] of blocks.entries()) {
        let code = block.code;
        for (const [name, path] of Object.entries(suite.exports)) code = code.replaceAll(`'${name}'`, `'${path}'`);
        await writeFile(join(directory, `example-${index}.mts`), `${code}\nexport {};\n`);
      }
    });
    after(async () => {
      await talus?.stop();
      await rm(directory, { recursive: true, force: true });
    });

    test('the document has its examples', () => suite.checkBlocks(blocks));

    test('they type-check (strict)', async () => {
      const tsconfig = {
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          noEmit: true,
          allowImportingTsExtensions: true,
          skipLibCheck: true,
          types: ['node'],
          typeRoots: [join(PROJECT_ROOT, 'node_modules', '@types')],
        },
        include: ['*.mts'],
      };
      await writeFile(join(directory, 'tsconfig.json'), JSON.stringify(tsconfig));
      await writeFile(join(directory, 'package.json'), '{"type":"module"}');
      const tsc = join(PROJECT_ROOT, 'node_modules', 'typescript', createRequire(import.meta.url)('typescript/package.json').bin.tsc);
      const result = await run(process.execPath, [tsc, '-p', directory], { cwd: directory, timeout: 120_000 }).catch((error: { stdout?: string }) => ({ stdout: error.stdout ?? String(error) }));
      assert.equal(result.stdout.trim(), '', result.stdout);
    });

    for (const [index, block] of blocks.entries()) {
      test(`example ${index + 1} (${block.section}) runs`, async () => {
        await run(process.execPath, ['--import', 'tsx', join(directory, `example-${index}.mts`)], {
          cwd: PROJECT_ROOT,
          timeout: 120_000,
          env: {
            PATH: process.env['PATH'] ?? '',
            HOME: join(directory, `home-${index}`),
            AWS_ENDPOINT_URL: talus.url,
            AWS_ACCESS_KEY_ID: ACCESS_KEY_ID,
            AWS_SECRET_ACCESS_KEY: SECRET_ACCESS_KEY,
            AWS_REGION: 'us-east-1',
            AWS_EC2_METADATA_DISABLED: 'true',
          },
        });
      });
    }
  });
}
