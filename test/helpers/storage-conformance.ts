/**
 * Runs the shared ObjectStorage conformance cases (src/storage/conformance.ts)
 * as node:test tests. A target's known differences from S3 skip exactly the
 * named cases, with the reason shown in the test report.
 */
import { describe, test } from 'node:test';
import { conformanceCases } from '../../src/storage/conformance.ts';
import type { ObjectStorage } from '../../src/storage/object-storage.ts';

export interface ConformanceTarget {
  name: string;
  storage: () => ObjectStorage;
  /** Case name -> why this target cannot pass it (a difference from S3 it is known to have). */
  differences?: Readonly<Record<string, string>>;
}

export function runConformance(target: ConformanceTarget): void {
  const names = new Set(conformanceCases.map((c) => c.name));
  for (const name of Object.keys(target.differences ?? {})) {
    if (!names.has(name)) throw new Error(`${target.name}: a difference names no case: ${name}`);
  }
  describe(`ObjectStorage conformance: ${target.name}`, () => {
    let run = 0;
    for (const c of conformanceCases) {
      const reason = target.differences?.[c.name];
      test(c.name, reason === undefined ? {} : { skip: `${target.name} differs from S3: ${reason}` }, async () => {
        await c.run(target.storage(), `case${++run}-${Date.now().toString(36)}`);
      });
    }
  });
}
