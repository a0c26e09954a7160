/** Where the admin API lives on the admin listener. */
export const ADMIN_PATH_PREFIX = '/talus/admin/v1/';
export const OPENAPI_PATH = `${ADMIN_PATH_PREFIX}openapi.json`;
/** The admin listener's port when --console-address gives none (MinIO's console port). */
export const ADMIN_PORT_DEFAULT = 9001;
