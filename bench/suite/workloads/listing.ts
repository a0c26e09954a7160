/**
 * ListObjectsV2 pages of up to 1000, one request at a time (so p50 is the
 * time of one page), over a bucket laid out for the two listing targets:
 *   a-flat/<8 digits>             the bulk of the keys: a page from the start, a
 *                                 page from deep inside (start-after near the
 *                                 end), and the start page with delimiter '/'
 *   b-few/p-NNNN/<8 digits>       P common prefixes with a few keys each, and
 *   c-many/p-NNNN/<8 digits>      P common prefixes with many keys each: a
 *                                 delimiter listing returns the same P entries
 *                                 for both and should take the same time.
 * s3rver lists by walking its directory tree: it gets a much smaller bucket.
 * The bare ceiling replays the page Talus returned for the same request.
 */
import { assert } from '../../../src/util/assert.ts';
import type { SuiteContext, Workload, WorkloadOutcome } from '../context.ts';
import { clientFor, loadOn } from '../measure.ts';
import { listLayoutKeys, type ListLayout } from '../options.ts';
import { capture } from '../presign.ts';
import type { RunningServer } from '../servers.ts';
import { LIST_BUCKET, LIST_FEW_PREFIX, LIST_FLAT_PREFIX, LIST_MANY_PREFIX, ensureListBucket, preparedKey } from '../setup.ts';
import { alternatedRunMs, compare } from './compare.ts';

const PAGE_KEYS = 1000;
/** The deep page starts this many keys before the end of a-flat/, so it is a full page. */
const DEEP_KEYS_BEFORE_END = 1100;

interface ListRequest {
  prefix: string;
  delimiter?: string;
  startAfter?: string;
}

interface ListShape {
  id: string;
  title: string;
  request(layout: ListLayout): ListRequest;
  /** Keys and common prefixes a correct server returns on this page. */
  expected(layout: ListLayout): { keys: number; commonPrefixes: number };
}

function deepStartId(layout: ListLayout): number {
  return Math.max(0, layout.flatKeys - DEEP_KEYS_BEFORE_END);
}

const SHAPES: ListShape[] = [
  {
    id: 'list-start',
    title: 'LIST 1000 from the start',
    request: () => ({ prefix: LIST_FLAT_PREFIX }),
    expected: (layout) => ({ keys: Math.min(PAGE_KEYS, layout.flatKeys), commonPrefixes: 0 }),
  },
  {
    id: 'list-deep',
    title: 'LIST 1000 from deep inside',
    request: (layout) => ({ prefix: LIST_FLAT_PREFIX, startAfter: preparedKey(LIST_FLAT_PREFIX, deepStartId(layout)) }),
    expected: (layout) => ({ keys: Math.min(PAGE_KEYS, layout.flatKeys - deepStartId(layout) - 1), commonPrefixes: 0 }),
  },
  {
    id: 'list-delimiter',
    title: 'LIST 1000 with delimiter',
    request: () => ({ prefix: LIST_FLAT_PREFIX, delimiter: '/' }),
    expected: (layout) => ({ keys: Math.min(PAGE_KEYS, layout.flatKeys), commonPrefixes: 0 }),
  },
  {
    id: 'list-prefixes-few',
    title: 'LIST prefixes, few keys each',
    request: () => ({ prefix: LIST_FEW_PREFIX, delimiter: '/' }),
    expected: (layout) => ({ keys: 0, commonPrefixes: Math.min(PAGE_KEYS, layout.prefixes) }),
  },
  {
    id: 'list-prefixes-many',
    title: 'LIST prefixes, many keys each',
    request: () => ({ prefix: LIST_MANY_PREFIX, delimiter: '/' }),
    expected: (layout) => ({ keys: 0, commonPrefixes: Math.min(PAGE_KEYS, layout.prefixes) }),
  },
];

function layoutOf(context: SuiteContext, server: RunningServer): ListLayout {
  return server.kind === 's3rver' ? context.settings.peerListLayout : context.settings.listLayout;
}

/** One untimed listing checks that the server returns the page this workload means to measure. */
async function checkPage(server: RunningServer, shape: ListShape, layout: ListLayout): Promise<void> {
  const client = clientFor(server, 1);
  try {
    const page = await client.listObjectsV2(LIST_BUCKET, { ...shape.request(layout), maxKeys: PAGE_KEYS });
    const expected = shape.expected(layout);
    if (page.keys.length !== expected.keys || page.commonPrefixes.length !== expected.commonPrefixes) {
      throw new Error(
        `${shape.id} on ${server.label}: ${page.keys.length} keys and ${page.commonPrefixes.length} common prefixes, expected ${expected.keys} and ${expected.commonPrefixes}`,
      );
    }
  } finally {
    await client.close();
  }
}

function layoutText(layout: ListLayout): string {
  return (
    `${listLayoutKeys(layout)} keys: ${layout.flatKeys} under ${LIST_FLAT_PREFIX}, ` +
    `${layout.prefixes} prefixes × ${layout.keysPerPrefixFew} under ${LIST_FEW_PREFIX}, ${layout.prefixes} × ${layout.keysPerPrefixMany} under ${LIST_MANY_PREFIX}`
  );
}

function listWorkload(shape: ListShape): Workload {
  return {
    id: shape.id,
    title: shape.title,
    ceiling: 'bare-http',
    async run(context): Promise<WorkloadOutcome> {
      const { rows, notes: cleanupNotes } = await compare(context, {
        workload: shape.id,
        driver: 'loadgen',
        prepare: async (server) => {
          await ensureListBucket(server, layoutOf(context, server));
          await checkPage(server, shape, layoutOf(context, server));
        },
        baselines: async (talus) => [
          {
            kind: 'bare-http',
            workers: context.options.workers,
            responses: { GET: await capture(talus, { method: 'LIST', bucket: LIST_BUCKET, maxKeys: PAGE_KEYS, ...shape.request(context.settings.listLayout) }) },
          },
        ],
        durationMs: context.settings.listRunMs,
        rounds: context.settings.ratioRounds,
        drive: (server, durationMs) => {
          const request = shape.request(layoutOf(context, server));
          assert(request.prefix !== '', 'listing: every shape lists under a prefix');
          return loadOn(server, {
            bucket: LIST_BUCKET,
            workload: 'list',
            size: { min: 0, max: 0 },
            concurrency: 1,
            durationMs,
            keyPrefix: request.prefix,
            prepare: false,
            list: { ...request, maxKeys: PAGE_KEYS },
          });
        },
      });
      const notes = [`1 request at a time for ${alternatedRunMs(context.settings.listRunMs, context.settings.ratioRounds) / 1000} s a run; Talus bucket ${layoutText(context.settings.listLayout)}`];
      if (shape.id === 'list-start') notes.push(`s3rver bucket (smaller: it walks its directory tree on every listing) ${layoutText(context.settings.peerListLayout)}`);
      return { rows, notes: [...notes, ...cleanupNotes] };
    },
  };
}

export const listWorkloads: Workload[] = SHAPES.map(listWorkload);
