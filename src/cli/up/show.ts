// What a person sees of the mesh's output while `meshward up` runs: app
// output and warnings as they come, and one short line per request or
// connection a proxy handled (allowed, or denied and by what), prefixed by
// where it came from. Everything else — the full JSON lines — is in
// <state>/logs/<name>.log.
//
// Under load the terminal would become the bottleneck (and a pipe that is
// not drained stalls the process writing to it), so request lines are
// rate-limited: past LINES_PER_SECOND a second, they are counted and one
// summary line says how many went only to the log files.

const SHOWN_EVENTS = new Set(['controlplane-started', 'policy-applied', 'policy-rejected', 'config-nack', 'config-refused', 'proxy-started']);

function short(principal: string): string {
  const m = /\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(principal);
  return m ? `${m[2]}.${m[1]}` : principal;
}

const LINES_PER_SECOND = 20;

/** Passes at most LINES_PER_SECOND request lines a second to `print`, and says how many it held back. */
export function rateLimitedRequests(print: (line: string) => void, logDir: string): { request(render: () => string | undefined): void; stop(): void } {
  let budget = LINES_PER_SECOND;
  let held = 0;
  const timer = setInterval(() => {
    if (held > 0) print(`[meshward] … ${held} more request lines in the last second (all of them are in ${logDir}/)`);
    held = 0;
    budget = LINES_PER_SECOND;
  }, 1000);
  timer.unref();
  return {
    request(render) {
      if (budget > 0) {
        budget--;
        const line = render();
        if (line !== undefined) print(line);
      } else held++;
    },
    stop: () => clearInterval(timer),
  };
}

/** Whether a line is a proxy's access log entry (checked before parsing, as most lines under load are). */
export function isAccessLogLine(line: string): boolean {
  return line.startsWith('{') && line.includes('"responseCode"');
}

/** The line to print for one output line of `name`, or undefined to keep it in the log file only. */
export function formatForTerminal(name: string, line: string): string | undefined {
  if (!line.startsWith('{')) return `[${name}] ${line}`;
  let e: Record<string, unknown>;
  try {
    e = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return `[${name}] ${line}`;
  }
  if ('responseCode' in e && 'decision' in e) {
    const what = e['method'] !== undefined ? `${String(e['method'])} ${String(e['path'])}` : `tcp :${String(e['port'])}`;
    const verdict = e['decision'] === 'DENY' ? `DENIED (${String(e['stage'] ?? '')}${e['policy'] ? ` ${String(e['policy'])}` : ''})` : String(e['decision']);
    // A gateway's callers have no mesh identity; their JWT's subject says who they are.
    const who = typeof e['principal'] === 'string' ? short(e['principal']) : typeof e['requestPrincipal'] === 'string' ? `token ${e['requestPrincipal']}` : 'no identity';
    return `[${String(e['workload'])}] ${what} from ${who} → ${String(e['responseCode'])} ${verdict}`;
  }
  const level = String(e['level'] ?? 'info');
  const event = String(e['event'] ?? '');
  if (level === 'info' && !SHOWN_EVENTS.has(event)) return undefined;
  const { time: _t, component: _c, level: _l, event: _e, ...rest } = e;
  const detail = Object.entries(rest)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  const text = `[${name}] ${level === 'info' ? '' : `${level.toUpperCase()} `}${event} ${detail}`;
  return text.length > 400 ? `${text.slice(0, 397)}...` : text;
}
