/** Talus's version, as package.json gives it (read once; dist/ and src/ both sit one level below it). */
import { readFileSync } from 'node:fs';

export const TALUS_VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
