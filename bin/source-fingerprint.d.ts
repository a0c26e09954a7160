/** See source-fingerprint.js. */
export function sourceFingerprint(sourceRoot: string): string;
