/** Runs `child.ts` tasks in separate Node processes and parses their reports. */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ChildReport } from './child.js';

const CHILD = fileURLToPath(new URL('./child.ts', import.meta.url));

/**
 * Runs one child task to completion.
 * @returns the child's report (peak RSS in KB and task numbers).
 * @throws Error with the child's stderr tail when it exits non-zero or prints no report.
 */
export function runChild(task: string, args: Record<string, unknown>): Promise<ChildReport> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, task, JSON.stringify(args)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const last = out.trim().split('\n').pop() ?? '';
      if (code === 0 && last.startsWith('{')) return resolve(JSON.parse(last) as ChildReport);
      const why = signal ? `was killed by ${signal} (out of memory?)` : `exited with code ${code}`;
      reject(
        new Error(`bench child "${task}" ${why}: ${err.trim().split('\n').slice(-8).join('\n') || '(no stderr)'}`),
      );
    });
  });
}
