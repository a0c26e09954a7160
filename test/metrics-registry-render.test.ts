/**
 * The registry's live render (what a single process's /metrics serves) gives
 * exactly the text of its snapshot's render (what a primary serves after
 * merging workers' snapshots), with the text of each series made once and
 * kept: labels escaped, histogram buckets cumulative, children added after a
 * first scrape present in the next, values read at each scrape.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LABEL_SETS_MAX, Registry, render } from '../src/metrics/registry.ts';

function populated(): { registry: Registry; bump: () => void } {
  const registry = new Registry();
  const requests = registry.counter('demo_requests_total', 'Requests, "quoted" \\ help\nsecond line.', ['operation', 'status']);
  const inFlight = registry.gauge('demo_in_flight', 'In flight.').labels();
  const duration = registry.histogram('demo_duration_seconds', 'Durations.', ['operation'], [0.0005, 0.01, 1, 2.5]);
  const odd = registry.gauge('demo_odd', 'Odd values.', ['name']);
  requests.labels('GetObject', '200').inc(3);
  requests.labels('Put"Object\\\nX', '500').inc();
  inFlight.set(2);
  for (const seconds of [0.0001, 0.0005, 0.003, 0.7, 9]) duration.labels('GetObject').observe(seconds);
  odd.labels('nan').set(Number.NaN);
  odd.labels('inf').set(Number.POSITIVE_INFINITY);
  odd.labels('fraction').set(0.1 + 0.2);
  registry.onCollect(() => inFlight.inc());
  return {
    registry,
    bump: () => {
      requests.labels('GetObject', '200').inc();
      requests.labels('HeadObject', '404').inc();
      duration.labels('PutObject').observe(1.5);
    },
  };
}

test('the live render is the snapshot\'s render, byte for byte, and follows the values and children added after it', async () => {
  const { registry, bump } = populated();
  const live = await registry.render();
  // Each scrape runs the collectors once (the gauge counts them): the snapshot is taken after the live render's.
  assert.match(live, /^demo_in_flight 3$/m);
  const snapshotText = render(await registry.snapshot());
  assert.equal(live.replace(/^demo_in_flight 3$/m, 'demo_in_flight 4'), snapshotText);

  // The text as Prometheus reads it: escaped label values and help, cumulative buckets, +Inf the count.
  assert.match(live, /^# HELP demo_requests_total Requests, "quoted" \\\\ help\\nsecond line\.$/m);
  assert.match(live, /^demo_requests_total\{operation="Put\\"Object\\\\\\nX",status="500"\} 1$/m);
  assert.match(live, /^demo_duration_seconds_bucket\{operation="GetObject",le="0.0005"\} 2$/m);
  assert.match(live, /^demo_duration_seconds_bucket\{operation="GetObject",le="0.01"\} 3$/m);
  assert.match(live, /^demo_duration_seconds_bucket\{operation="GetObject",le="2.5"\} 4$/m);
  assert.match(live, /^demo_duration_seconds_bucket\{operation="GetObject",le="\+Inf"\} 5$/m);
  assert.match(live, /^demo_duration_seconds_count\{operation="GetObject"\} 5$/m);
  assert.match(live, /^demo_odd\{name="nan"\} NaN$/m);
  assert.match(live, /^demo_odd\{name="inf"\} \+Inf$/m);
  assert.match(live, /^demo_odd\{name="fraction"\} 0.30000000000000004$/m);

  // New values and new children after the series' text was made and kept.
  bump();
  const next = await registry.render();
  assert.match(next, /^demo_requests_total\{operation="GetObject",status="200"\} 4$/m);
  assert.match(next, /^demo_requests_total\{operation="HeadObject",status="404"\} 1$/m);
  assert.match(next, /^demo_duration_seconds_bucket\{operation="PutObject",le="1"\} 0$/m);
  assert.match(next, /^demo_duration_seconds_bucket\{operation="PutObject",le="2.5"\} 1$/m);
  assert.match(next, /^demo_duration_seconds_sum\{operation="PutObject"\} 1.5$/m);
  assert.equal(next.replace(/^demo_in_flight 5$/m, 'demo_in_flight 6'), render(await registry.snapshot()));
});

test('a small registry renders to exactly this text, live and from its snapshot', async () => {
  const registry = new Registry();
  const requests = registry.counter('demo_requests_total', 'Requests\\by "kind".', ['operation', 'status']);
  registry.gauge('demo_unused', 'A metric with labels and no child yet.', ['backend']);
  const low = registry.gauge('demo_low', 'Lowest.').labels();
  const duration = registry.histogram('demo_seconds', 'Seconds.', ['operation'], [0.5, 1]);
  requests.labels('GetObject', '200').inc(2);
  requests.labels('a"b\\c\nd', '503').inc();
  low.set(Number.NEGATIVE_INFINITY);
  duration.labels('GetObject').observe(0.25);
  duration.labels('GetObject').observe(0.75);
  duration.labels('GetObject').observe(3);
  const expected = [
    '# HELP demo_requests_total Requests\\\\by "kind".',
    '# TYPE demo_requests_total counter',
    'demo_requests_total{operation="GetObject",status="200"} 2',
    'demo_requests_total{operation="a\\"b\\\\c\\nd",status="503"} 1',
    '# HELP demo_unused A metric with labels and no child yet.',
    '# TYPE demo_unused gauge',
    '# HELP demo_low Lowest.',
    '# TYPE demo_low gauge',
    'demo_low -Inf',
    '# HELP demo_seconds Seconds.',
    '# TYPE demo_seconds histogram',
    'demo_seconds_bucket{operation="GetObject",le="0.5"} 1',
    'demo_seconds_bucket{operation="GetObject",le="1"} 2',
    'demo_seconds_bucket{operation="GetObject",le="+Inf"} 3',
    'demo_seconds_sum{operation="GetObject"} 4',
    'demo_seconds_count{operation="GetObject"} 3',
    '',
  ].join('\n');
  assert.equal(await registry.render(), expected);
  assert.equal(render(await registry.snapshot()), expected);
  // Again, from the series' text kept by the first render.
  assert.equal(await registry.render(), expected);
});

test('past LABEL_SETS_MAX label sets, samples go to one overflow child, which the live render shows as the snapshot does', async () => {
  const registry = new Registry();
  const counter = registry.counter('demo_bounded_total', 'Bounded.', ['key']);
  for (let i = 0; i < LABEL_SETS_MAX + 5; i++) counter.labels(`k${i}`).inc();
  const live = await registry.render();
  assert.match(live, /^demo_bounded_total\{key="other"\} 5$/m);
  // The bound's label sets and the overflow child: no more, however many more sets come.
  for (let i = 0; i < 100; i++) counter.labels(`more${i}`).inc();
  assert.equal((await registry.render()).split('\n').filter((line) => line.startsWith('demo_bounded_total{')).length, LABEL_SETS_MAX + 1);
  assert.match(await registry.render(), /^demo_bounded_total\{key="other"\} 105$/m);
  assert.equal(await registry.render(), render(await registry.snapshot()));
});
