/**
 * Counters, gauges and histograms in Prometheus's text format (0.0.4).
 *
 * Hand-written rather than prom-client: the request path records five
 * samples per request, and a child here is resolved once per label set and
 * kept (a Map lookup, then plain number additions), where prom-client hashes
 * its label object on every call. Snapshots are plain JSON so worker
 * processes can send theirs to the primary, which merges them (`merge`).
 *
 * Label sets are bounded: each metric holds at most LABEL_SETS_MAX children
 * (operations × statuses are far fewer); past it, samples go to one overflow
 * child labelled "other", so a bug can never grow memory without bound.
 */
import { assert } from '../util/assert.ts';

export const LABEL_SETS_MAX = 2048;
const OVERFLOW = 'other';

type Kind = 'counter' | 'gauge' | 'histogram';

export interface MetricSnapshot {
  name: string;
  help: string;
  kind: Kind;
  labelNames: readonly string[];
  buckets?: readonly number[];
  /** Per label set: the values, and the sample (a number, or a histogram's bucket counts, sum and count). */
  children: { labels: readonly string[]; value?: number; counts?: number[]; sum?: number; count?: number }[];
}

abstract class Metric<Child> {
  readonly #children = new Map<string, { labels: readonly string[]; child: Child }>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
  ) {
    assert(/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(name), `metric name ${name}`);
  }

  protected abstract create(): Child;

  /** The child of one label set (same order as labelNames); keep it where the set is fixed. */
  labels(...values: string[]): Child {
    assert(values.length === this.labelNames.length, `${this.name} takes ${this.labelNames.length} labels`);
    const key = values.join('\u0000');
    let entry = this.#children.get(key);
    if (entry === undefined) {
      if (this.#children.size >= LABEL_SETS_MAX) return this.labels(...values.map(() => OVERFLOW));
      entry = { labels: values, child: this.create() };
      this.#children.set(key, entry);
    }
    return entry.child;
  }

  protected entries(): Iterable<{ labels: readonly string[]; child: Child }> {
    return this.#children.values();
  }

  abstract snapshot(): MetricSnapshot;
}

export class CounterChild {
  value = 0;
  inc(by = 1): void {
    this.value += by;
  }
}

export class Counter extends Metric<CounterChild> {
  protected create(): CounterChild {
    return new CounterChild();
  }
  snapshot(): MetricSnapshot {
    return { name: this.name, help: this.help, kind: 'counter', labelNames: this.labelNames, children: [...this.entries()].map(({ labels, child }) => ({ labels, value: child.value })) };
  }
}

export class GaugeChild {
  value = 0;
  set(value: number): void {
    this.value = value;
  }
  inc(by = 1): void {
    this.value += by;
  }
  dec(by = 1): void {
    this.value -= by;
  }
}

export class Gauge extends Metric<GaugeChild> {
  protected create(): GaugeChild {
    return new GaugeChild();
  }
  snapshot(): MetricSnapshot {
    return { name: this.name, help: this.help, kind: 'gauge', labelNames: this.labelNames, children: [...this.entries()].map(({ labels, child }) => ({ labels, value: child.value })) };
  }
}

export class HistogramChild {
  readonly counts: number[];
  sum = 0;
  count = 0;
  constructor(readonly buckets: readonly number[]) {
    this.counts = new Array<number>(buckets.length).fill(0);
  }
  observe(value: number): void {
    this.sum += value;
    this.count++;
    // Non-cumulative here (one increment per sample); rendering accumulates.
    const buckets = this.buckets;
    for (let i = 0; i < buckets.length; i++) {
      if (value <= buckets[i]!) {
        this.counts[i]!++;
        return;
      }
    }
  }
}

export class Histogram extends Metric<HistogramChild> {
  constructor(name: string, help: string, labelNames: readonly string[], readonly buckets: readonly number[]) {
    super(name, help, labelNames);
    assert(buckets.length > 0 && buckets.every((bound, i) => i === 0 || bound > buckets[i - 1]!), `${name}: buckets ascend`);
  }
  protected create(): HistogramChild {
    return new HistogramChild(this.buckets);
  }
  snapshot(): MetricSnapshot {
    return {
      name: this.name, help: this.help, kind: 'histogram', labelNames: this.labelNames, buckets: this.buckets,
      children: [...this.entries()].map(({ labels, child }) => ({ labels, counts: [...child.counts], sum: child.sum, count: child.count })),
    };
  }
}

export class Registry {
  readonly #metrics: Metric<unknown>[] = [];
  /** Called before each snapshot: gauges read from elsewhere (queue lengths, disk space) update here. */
  readonly #collectors: (() => void | Promise<void>)[] = [];

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.#add(new Counter(name, help, labelNames));
  }
  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    return this.#add(new Gauge(name, help, labelNames));
  }
  histogram(name: string, help: string, labelNames: readonly string[], buckets: readonly number[]): Histogram {
    return this.#add(new Histogram(name, help, labelNames, buckets));
  }
  onCollect(collect: () => void | Promise<void>): void {
    this.#collectors.push(collect);
  }

  #add<M extends Metric<unknown>>(metric: M): M {
    assert(!this.#metrics.some((existing) => existing.name === metric.name), `metric ${metric.name} registered twice`);
    this.#metrics.push(metric);
    return metric;
  }

  async snapshot(): Promise<MetricSnapshot[]> {
    for (const collect of this.#collectors) await collect();
    return this.#metrics.map((metric) => metric.snapshot());
  }
}

/**
 * Sums snapshots of the same metrics from several processes: counters and
 * histograms add up; gauges add up too (requests in flight, bytes resident
 * per process), except those named in `notSummed` (the same value seen from
 * every process, e.g. disk free), which take the first.
 */
export function merge(snapshots: readonly MetricSnapshot[][], notSummed: ReadonlySet<string> = new Set()): MetricSnapshot[] {
  const merged = new Map<string, MetricSnapshot>();
  for (const snapshot of snapshots) {
    for (const metric of snapshot) {
      const into = merged.get(metric.name);
      if (into === undefined) {
        merged.set(metric.name, structuredClone(metric));
        continue;
      }
      for (const child of metric.children) {
        const key = child.labels.join('\u0000');
        const existing = into.children.find((candidate) => candidate.labels.join('\u0000') === key);
        if (existing === undefined) {
          into.children.push(structuredClone(child));
        } else if (metric.kind === 'histogram') {
          existing.sum! += child.sum!;
          existing.count! += child.count!;
          for (let i = 0; i < child.counts!.length; i++) existing.counts![i]! += child.counts![i]!;
        } else if (!(metric.kind === 'gauge' && notSummed.has(metric.name))) {
          existing.value! += child.value!;
        }
      }
    }
  }
  return [...merged.values()];
}

/** Prometheus text exposition format 0.0.4. */
export function render(metrics: readonly MetricSnapshot[]): string {
  let text = '';
  for (const metric of metrics) {
    text += `# HELP ${metric.name} ${escapeHelp(metric.help)}\n# TYPE ${metric.name} ${metric.kind}\n`;
    for (const child of metric.children) {
      if (metric.kind !== 'histogram') {
        text += `${metric.name}${labelText(metric.labelNames, child.labels)} ${formatNumber(child.value!)}\n`;
        continue;
      }
      let cumulative = 0;
      metric.buckets!.forEach((bound, i) => {
        cumulative += child.counts![i]!;
        text += `${metric.name}_bucket${labelText([...metric.labelNames, 'le'], [...child.labels, formatNumber(bound)])} ${cumulative}\n`;
      });
      text += `${metric.name}_bucket${labelText([...metric.labelNames, 'le'], [...child.labels, '+Inf'])} ${child.count}\n`;
      text += `${metric.name}_sum${labelText(metric.labelNames, child.labels)} ${formatNumber(child.sum!)}\n`;
      text += `${metric.name}_count${labelText(metric.labelNames, child.labels)} ${child.count}\n`;
    }
  }
  return text;
}

function labelText(names: readonly string[], values: readonly string[]): string {
  if (names.length === 0) return '';
  return `{${names.map((name, i) => `${name}="${escapeLabel(values[i]!)}"`).join(',')}}`;
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function formatNumber(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}
