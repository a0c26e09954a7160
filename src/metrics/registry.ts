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
 * child labelled "other" (made past the bound if no real "other" came first), so a bug can never
 * grow memory without bound.
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

/** A child's label set, with the text of its series' names (Series) made once, at its first render, and kept. */
interface Entry<Child, Series> {
  labels: readonly string[];
  child: Child;
  series: Series | undefined;
}

abstract class Metric<Child, Series> {
  readonly #children = new Map<string, Entry<Child, Series>>();
  /** `# HELP …` and `# TYPE …`, made once. */
  #header: string | undefined;

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
    let key = values.join('\u0000');
    let entry = this.#children.get(key);
    if (entry === undefined) {
      let labels = values;
      if (this.#children.size >= LABEL_SETS_MAX) {
        // Full: the overflow child, made past the bound (once) if it is not there yet.
        labels = values.map(() => OVERFLOW);
        key = labels.join('\u0000');
        entry = this.#children.get(key);
      }
      if (entry === undefined) {
        entry = { labels, child: this.create(), series: undefined };
        this.#children.set(key, entry);
      }
    }
    return entry.child;
  }

  protected entries(): Iterable<Entry<Child, Series>> {
    return this.#children.values();
  }

  abstract snapshot(): MetricSnapshot;

  abstract readonly kind: Kind;

  /** This metric in the text format, from its live values: what render() gives for its snapshot. */
  render(): string {
    let text = (this.#header ??= metricHeader(this.name, this.help, this.kind));
    for (const entry of this.#children.values()) text += this.renderChild((entry.series ??= this.makeSeries(entry.labels)), entry.child);
    return text;
  }

  protected abstract makeSeries(labels: readonly string[]): Series;
  protected abstract renderChild(series: Series, child: Child): string;
}

export class CounterChild {
  value = 0;
  inc(by = 1): void {
    this.value += by;
  }
}

export class Counter extends Metric<CounterChild, string> {
  readonly kind = 'counter';
  protected makeSeries(labels: readonly string[]): string {
    return valueSeries(this.name, this.labelNames, labels);
  }
  protected renderChild(series: string, child: CounterChild): string {
    return valueLine(series, child.value);
  }
  protected create(): CounterChild {
    return new CounterChild();
  }
  snapshot(): MetricSnapshot {
    return { name: this.name, help: this.help, kind: this.kind, labelNames: this.labelNames, children: [...this.entries()].map(({ labels, child }) => ({ labels, value: child.value })) };
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

export class Gauge extends Metric<GaugeChild, string> {
  readonly kind = 'gauge';
  protected makeSeries(labels: readonly string[]): string {
    return valueSeries(this.name, this.labelNames, labels);
  }
  protected renderChild(series: string, child: GaugeChild): string {
    return valueLine(series, child.value);
  }
  protected create(): GaugeChild {
    return new GaugeChild();
  }
  snapshot(): MetricSnapshot {
    return { name: this.name, help: this.help, kind: this.kind, labelNames: this.labelNames, children: [...this.entries()].map(({ labels, child }) => ({ labels, value: child.value })) };
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

export class Histogram extends Metric<HistogramChild, HistogramSeries> {
  readonly kind = 'histogram';
  constructor(name: string, help: string, labelNames: readonly string[], readonly buckets: readonly number[]) {
    super(name, help, labelNames);
    assert(buckets.length > 0 && buckets.every((bound, i) => i === 0 || bound > buckets[i - 1]!), `${name}: buckets ascend`);
  }
  protected makeSeries(labels: readonly string[]): HistogramSeries {
    return histogramSeries(this.name, this.labelNames, labels, this.buckets);
  }
  protected renderChild(series: HistogramSeries, child: HistogramChild): string {
    return histogramLines(series, child.counts, child.count, child.sum);
  }
  protected create(): HistogramChild {
    return new HistogramChild(this.buckets);
  }
  snapshot(): MetricSnapshot {
    return {
      name: this.name, help: this.help, kind: this.kind, labelNames: this.labelNames, buckets: this.buckets,
      children: [...this.entries()].map(({ labels, child }) => ({ labels, counts: [...child.counts], sum: child.sum, count: child.count })),
    };
  }
}

export class Registry {
  readonly #metrics: Metric<unknown, unknown>[] = [];
  /** Called before each snapshot or render: gauges read from elsewhere (queue lengths, disk space) update here. */
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

  #add<M extends Metric<unknown, unknown>>(metric: M): M {
    assert(!this.#metrics.some((existing) => existing.name === metric.name), `metric ${metric.name} registered twice`);
    this.#metrics.push(metric);
    return metric;
  }

  async snapshot(): Promise<MetricSnapshot[]> {
    await this.#collect();
    return this.#metrics.map((metric) => metric.snapshot());
  }

  /**
   * The text format of the live values, without a snapshot: what
   * render(await snapshot()) gives, for the process that scrapes only itself.
   * Each series' name and labels are made into text once and kept; a
   * scrape writes the numbers. (A scrape that escaped every label and
   * formatted every bucket bound each time, once a second, cost the 4 KiB
   * GET row ~1.5–2 % per unit of CPU; with this render, "on" read 101.2 ±
   * 0.6 % of the old: docs/PERFORMANCE.md, "Metrics and logs, round 11".)
   */
  async render(): Promise<string> {
    await this.#collect();
    let text = '';
    for (const metric of this.#metrics) text += metric.render();
    return text;
  }

  async #collect(): Promise<void> {
    for (const collect of this.#collectors) await collect();
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
    text += metricHeader(metric.name, metric.help, metric.kind);
    for (const child of metric.children) {
      text += metric.kind === 'histogram'
        ? histogramLines(histogramSeries(metric.name, metric.labelNames, child.labels, metric.buckets!), child.counts!, child.count!, child.sum!)
        : valueLine(valueSeries(metric.name, metric.labelNames, child.labels), child.value!);
    }
  }
  return text;
}

/** A histogram's label set's lines up to their values: one per bucket bound and then `+Inf`, its sum's and its count's. */
interface HistogramSeries {
  buckets: readonly string[];
  sum: string;
  count: string;
}

function metricHeader(name: string, help: string, kind: Kind): string {
  return `# HELP ${name} ${escapeHelp(help)}\n# TYPE ${name} ${kind}\n`;
}

/** A counter's or gauge's label set's line up to its value: `name{labels} `. */
function valueSeries(name: string, labelNames: readonly string[], labels: readonly string[]): string {
  return `${name}${labelText(labelNames, labels)} `;
}

function valueLine(series: string, value: number): string {
  return `${series}${formatNumber(value)}\n`;
}

function histogramSeries(name: string, labelNames: readonly string[], labels: readonly string[], buckets: readonly number[]): HistogramSeries {
  const own = labelText(labelNames, labels);
  const withBound = [...labelNames, 'le'];
  return {
    buckets: [...buckets.map(formatNumber), '+Inf'].map((bound) => `${name}_bucket${labelText(withBound, [...labels, bound])} `),
    sum: `${name}_sum${own} `,
    count: `${name}_count${own} `,
  };
}

/** Bucket counts are kept per bucket (one increment per sample) and written cumulative, with `+Inf` the count. */
function histogramLines(series: HistogramSeries, counts: readonly number[], count: number, sum: number): string {
  let text = '';
  let cumulative = 0;
  for (let i = 0; i < counts.length; i++) {
    cumulative += counts[i]!;
    text += `${series.buckets[i]}${cumulative}\n`;
  }
  return `${text}${series.buckets[counts.length]}${count}\n${series.sum}${formatNumber(sum)}\n${series.count}${count}\n`;
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
