/**
 * When the lifecycle worker runs and how long its "day" is: calendar days
 * and an hourly scan by default; with a test time scale
 * (TALUS_LIFECYCLE_DAY_SECONDS, as Ceph's rgw_lc_debug_interval) a day is
 * that many seconds and the worker scans every tenth of one, so a rule of
 * "1 day" acts within 1.1 scaled days. TALUS_LIFECYCLE_INTERVAL_SECONDS sets
 * the scan interval either way.
 */
import { ConfigError } from '../config/config.ts';
import {
  LIFECYCLE_SCALED_SCAN_INTERVAL_MS_MAX,
  LIFECYCLE_SCALED_SCAN_INTERVAL_MS_MIN,
  LIFECYCLE_SCAN_INTERVAL_MS,
} from '../util/limits.ts';
import { dayScale, type DayScale } from './rules.ts';

export interface LifecycleSettings {
  /** Length of a lifecycle day in seconds; absent: calendar days (AWS). */
  daySeconds?: number;
  /** Time between scans of every bucket; absent: hourly, or a tenth of a scaled day. */
  scanIntervalMs?: number;
}

export interface LifecycleSchedule {
  scale: DayScale;
  scanIntervalMs: number;
}

export const DAY_SECONDS_ENV = 'TALUS_LIFECYCLE_DAY_SECONDS';
export const INTERVAL_SECONDS_ENV = 'TALUS_LIFECYCLE_INTERVAL_SECONDS';

export function lifecycleSchedule(settings: LifecycleSettings): LifecycleSchedule {
  const scale = dayScale(settings.daySeconds);
  const scanIntervalMs = settings.scanIntervalMs ?? (scale.calendar
    ? LIFECYCLE_SCAN_INTERVAL_MS
    : Math.min(LIFECYCLE_SCALED_SCAN_INTERVAL_MS_MAX, Math.max(LIFECYCLE_SCALED_SCAN_INTERVAL_MS_MIN, scale.dayMs / 10)));
  return { scale, scanIntervalMs };
}

/** The settings the environment gives; a malformed value fails start-up rather than silently expiring on another clock. */
export function lifecycleSettingsFromEnv(env: NodeJS.ProcessEnv): LifecycleSettings {
  const settings: LifecycleSettings = {};
  const day = positiveSeconds(env, DAY_SECONDS_ENV);
  if (day !== undefined) settings.daySeconds = day;
  const interval = positiveSeconds(env, INTERVAL_SECONDS_ENV);
  if (interval !== undefined) settings.scanIntervalMs = interval * 1000;
  return settings;
}

function positiveSeconds(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const text = env[name];
  if (text === undefined || text === '') return undefined;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new ConfigError(`${name} must be a positive number of seconds, not ${JSON.stringify(text)}`);
  return value;
}
