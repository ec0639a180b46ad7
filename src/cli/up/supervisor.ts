// Runs the processes of a local mesh and keeps them running: a process that
// exits on its own is started again after a backoff (1 s, doubling to 30 s,
// back to 1 s once it has stayed up for 10 s). Every output line goes to
// <state>/logs/<name>.log and, through `show`, to the terminal with the
// process's name in front. stopAll() ends them in the order given, each with
// SIGTERM and, after a grace period, SIGKILL; if this process dies first,
// the children are killed with it.

import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export interface ChildSpec {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly cwd: string;
  readonly env: NodeJS.ProcessEnv;
}

export interface SupervisorOptions {
  readonly logDir: string;
  /** One line of a child's output, to show or not. */
  readonly show: (name: string, line: string) => void;
  /** The supervisor's own events (exits, restarts). */
  readonly event: (name: string, message: string) => void;
  readonly initialBackoffMs?: number;
  readonly maxBackoffMs?: number;
  /** SIGTERM → SIGKILL grace; default 5 s. */
  readonly graceMs?: number;
}

const STABLE_MS = 10_000;

export class Supervised {
  readonly spec: ChildSpec;
  child: ChildProcess | undefined;
  restarts = 0;
  #startedAt = 0;
  #failures = 0;
  #timer: NodeJS.Timeout | undefined;
  #stopping = false;
  readonly #sup: Supervisor;
  readonly #log: WriteStream;

  constructor(sup: Supervisor, spec: ChildSpec, log: WriteStream) {
    this.#sup = sup;
    this.spec = spec;
    this.#log = log;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  start(): void {
    if (this.#stopping) return;
    const { spec } = this;
    this.#startedAt = Date.now();
    // Its own process group: Ctrl-C reaches `up` alone, which stops the
    // children in order (apps, proxies, control plane) instead of all at once.
    const child = spawn(spec.command, [...spec.args], { cwd: spec.cwd, env: spec.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    this.child = child;
    for (const stream of [child.stdout, child.stderr]) {
      const lines = createInterface({ input: stream, crlfDelay: Infinity });
      lines.on('line', (line) => {
        this.#log.write(`${line}\n`);
        this.#sup.options.show(spec.name, line);
      });
    }
    child.on('error', (err) => this.#sup.options.event(spec.name, `cannot start: ${err.message}`));
    child.on('exit', (code, signal) => {
      if (this.#stopping) return;
      const ranMs = Date.now() - this.#startedAt;
      if (ranMs > STABLE_MS) this.#failures = 0;
      const initial = this.#sup.options.initialBackoffMs ?? 1000;
      const delay = Math.min(this.#sup.options.maxBackoffMs ?? 30_000, initial * 2 ** this.#failures);
      this.#failures++;
      this.restarts++;
      this.#sup.options.event(spec.name, `exited (${signal ?? `code ${code}`}); restarting in ${(delay / 1000).toFixed(1)} s`);
      this.#timer = setTimeout(() => this.start(), delay);
    });
  }

  /** SIGTERM, then SIGKILL after the grace period; resolves when the process is gone. */
  async stop(graceMs: number): Promise<void> {
    this.#stopping = true;
    clearTimeout(this.#timer);
    const child = this.child;
    if (child === undefined || !this.running) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(kill);
  }

  killNow(): void {
    this.#stopping = true;
    clearTimeout(this.#timer);
    if (this.running) this.child?.kill('SIGKILL');
  }
}

export class Supervisor {
  readonly options: SupervisorOptions;
  readonly #all: Supervised[] = [];
  readonly #logs: WriteStream[] = [];
  readonly #onExit = (): void => {
    for (const s of this.#all) s.killNow();
  };

  constructor(options: SupervisorOptions) {
    this.options = options;
    mkdirSync(options.logDir, { recursive: true, mode: 0o700 });
    process.on('exit', this.#onExit);
  }

  start(spec: ChildSpec): Supervised {
    const log = createWriteStream(join(this.options.logDir, `${spec.name}.log`), { flags: 'a', mode: 0o600 });
    this.#logs.push(log);
    const s = new Supervised(this, spec, log);
    this.#all.push(s);
    s.start();
    return s;
  }

  get children(): readonly Supervised[] {
    return this.#all;
  }

  /** Stops the groups one after the other (apps before proxies before the control plane). */
  async stopAll(groups: readonly (readonly Supervised[])[]): Promise<void> {
    const grace = this.options.graceMs ?? 5000;
    for (const group of groups) await Promise.all(group.map((s) => s.stop(grace)));
    // Anything not in a group goes last.
    await Promise.all(this.#all.map((s) => s.stop(grace)));
    for (const l of this.#logs) l.end();
    process.off('exit', this.#onExit);
  }
}
