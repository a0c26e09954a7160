import { open, rename } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * Replaces `path` with `text` so that a crash leaves the old file or the new
 * one, never a torn one, and the new one survives power loss once this
 * resolves: a temporary file beside it, fsynced, renamed over it, and the
 * directory fsynced. Callers serialize their writes to one path.
 */
export async function writeFileAtomically(path: string, text: string, mode = 0o600): Promise<void> {
  const temporary = `${path}.tmp`;
  const file = await open(temporary, 'w', mode);
  try {
    await file.writeFile(text);
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(temporary, path);
  const directory = await open(dirname(path), 'r');
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
}
