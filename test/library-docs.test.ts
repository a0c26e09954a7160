/**
 * docs/LIBRARY.md's examples (every ```ts example block) type-check and run,
 * each as its own program against a real Talus on loopback, with `talus/*`
 * imports pointed at src/public/ — so the documentation cannot rot.
 */
import { strict as assert } from 'node:assert';
import { join } from 'node:path';
import { describeMarkdownExamples } from './helpers/markdown-examples.ts';
import { PROJECT_ROOT } from './helpers/process.ts';

await describeMarkdownExamples({
  document: 'LIBRARY.md',
  exports: {
    'talus/storage': join(PROJECT_ROOT, 'src', 'public', 'storage.ts'),
    'talus/client': join(PROJECT_ROOT, 'src', 'public', 'client.ts'),
  },
  checkBlocks(blocks) {
    assert.ok(blocks.length >= 6, `${blocks.length} examples`);
    assert.ok(blocks.some((block) => block.code.includes("from 'talus/storage'")));
    assert.ok(blocks.some((block) => block.code.includes("from 'talus/client'")));
  },
});
