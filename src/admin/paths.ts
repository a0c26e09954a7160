/** Where the admin API lives on the admin listener. */
export const ADMIN_PATH_PREFIX = '/talus/admin/v1/';
export const OPENAPI_PATH = `${ADMIN_PATH_PREFIX}openapi.json`;
/** The admin listener's port when --console-address gives none (MinIO's console port). */
export const ADMIN_PORT_DEFAULT = 9001;
/** Prometheus scrapes this on the admin listener (not the S3 one, where /metrics would be a bucket). */
export const METRICS_PATH = '/metrics';
export const LIVE_PATH = '/health/live';
export const READY_PATH = '/health/ready';
