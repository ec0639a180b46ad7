// The human answer to "why was this allowed or denied?": which stage decided,
// which policy and rule, and for a default deny the nearest ALLOW rule and
// the first condition it did not meet.

import type { Decision } from '../policy/decision.ts';
import type { AuthzCheckRequest } from '../api/authz-request.ts';

function list(values: readonly string[]): string {
  return values.map((v) => JSON.stringify(v)).join(', ');
}

export function explainDecision(d: Decision, req: AuthzCheckRequest): string {
  const lines: string[] = [];
  const status = d.status === 'reset' ? 'connection reset' : `HTTP ${d.status}`;
  lines.push(`${d.decision} (${status})${d.stage ? ` at ${d.stage}` : ''}`);
  lines.push(`  ${d.reason}`);
  const t = d.trace;
  lines.push('');
  lines.push(`Destination: ${req.destination.namespace}, service account ${req.destination.serviceAccount}, port ${req.destination.port}`);
  if (t.peerAuthentication) {
    const p = t.peerAuthentication;
    lines.push(`1. Peer authentication: mTLS ${p.mode} (${p.policy ?? 'no PeerAuthentication: PERMISSIVE'}); connection is ${p.connection}`);
    if (p.clientTls) {
      lines.push(`   client sends ${p.clientTls.mode}${p.clientTls.auto ? ' (auto mTLS)' : ''}: ${p.clientTls.reason}`);
    }
    lines.push(`   peer identity: ${d.principal ?? 'none'}`);
  }
  if (t.normalizedPath !== undefined) lines.push(`2. Path: ${JSON.stringify(req.request.path)} is matched as ${JSON.stringify(t.normalizedPath)}`);
  if (t.normalizedPath !== undefined && !t.requestAuthentication) {
    lines.push('3. Request authentication: no RequestAuthentication applies to this workload');
  }
  if (t.requestAuthentication) {
    const r = t.requestAuthentication;
    lines.push(`3. Request authentication: ${r.status === 'ok' ? 'passed' : `refused (${r.status})`}: ${r.reason}${r.policy ? ` [${r.policy}]` : ''}`);
    lines.push(`   request principal: ${d.requestPrincipal ?? 'none'}`);
  }
  if (t.authorization) {
    const a = t.authorization;
    lines.push(`4. Authorization: ${a.reason}${d.policy !== null && d.rule !== null ? ` (${d.policy}, rules[${d.rule}])` : ''}`);
    for (const o of a.observed) {
      lines.push(`   ${o.dryRun ? 'dry-run' : 'audit'}: ${o.action} policy ${o.policy} rules[${o.rule}] matched (not enforced)`);
    }
    if (a.nearest) {
      const n = a.nearest;
      lines.push(`   nearest ALLOW rule: ${n.policy} rules[${n.rule}] (${n.satisfied}/${n.total} conditions met)`);
      if (n.firstFailure) {
        const f = n.firstFailure;
        const want = f.values.length > 0 ? `one of ${list(f.values)}` : '';
        const not = f.notValues.length > 0 ? `${want ? ' and ' : ''}none of ${list(f.notValues)}` : '';
        lines.push(`   first condition not met: ${f.field} requires ${want}${not}`);
      }
    } else if (a.nearest === null) {
      lines.push('   no ALLOW rule can match this kind of traffic');
    }
  }
  return `${lines.join('\n')}\n`;
}
