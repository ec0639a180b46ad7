// Whether a process exists: how lock files and server files tell a live
// owner from one that is gone.

/** True if `pid` is a running process (one owned by another user counts). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
