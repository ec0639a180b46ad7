// What `meshward up` shows of its processes' output: request lines in short
// form (with who called and what decided), warnings, chosen events; info
// noise only in the log files; request lines rate-limited with a count of
// what was held back.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatForTerminal, isAccessLogLine, rateLimitedRequests } from '../../../src/cli/up/show.ts';

const access = (fields: Record<string, unknown>): string =>
  JSON.stringify({ time: 't', workload: 'production/payment-service', port: 8080, protocol: 'http', method: 'GET', path: '/api/v1/payments/summary', responseCode: 403, decision: 'DENY', stage: 'authorization', policy: null, principal: 'cluster.local/ns/production/sa/reporting-service', durationMs: 1, mtls: true, ...fields });

describe('meshward up: terminal output', () => {
  it('shows a request in one line: who called, what, the answer and the deciding stage and policy', () => {
    assert.equal(
      formatForTerminal('node-proxy', access({ policy: 'production/deny-reports' })),
      '[production/payment-service] GET /api/v1/payments/summary from reporting-service.production → 403 DENIED (authorization production/deny-reports)',
    );
  });

  it('names a gateway caller by its token\'s principal', () => {
    const line = formatForTerminal('node-proxy', access({ workload: 'istio-system/ingress-gateway', principal: null, requestPrincipal: 'https://auth.shop.example/alice', responseCode: 201, decision: 'ALLOW' }));
    assert.equal(line, '[istio-system/ingress-gateway] GET /api/v1/payments/summary from token https://auth.shop.example/alice → 201 ALLOW');
  });

  it('keeps info events in the log files, shows warnings and chosen events, and plain lines as they are', () => {
    assert.equal(formatForTerminal('controlplane', JSON.stringify({ level: 'info', event: 'certificate-issued', serial: 'x' })), undefined);
    assert.equal(formatForTerminal('controlplane', JSON.stringify({ level: 'warn', event: 'config-nack', workload: 'a' })), '[controlplane] WARN config-nack workload=a');
    assert.equal(formatForTerminal('controlplane', JSON.stringify({ level: 'info', event: 'policy-applied', version: 7 })), '[controlplane] policy-applied version=7');
    assert.equal(formatForTerminal('order-service', 'listening on 18081'), '[order-service] listening on 18081');
  });

  it('tells access log lines from other lines without parsing them', () => {
    assert.equal(isAccessLogLine(access({})), true);
    assert.equal(isAccessLogLine('{"level":"info","event":"proxy-started"}'), false);
  });

  it('passes 20 request lines a second and counts the rest', async () => {
    const printed: string[] = [];
    const limiter = rateLimitedRequests((l) => printed.push(l), '.meshward/logs');
    try {
      let rendered = 0;
      for (let i = 0; i < 50; i++) limiter.request(() => `line ${(rendered += 1)}`);
      assert.equal(printed.length, 20);
      assert.equal(rendered, 20, 'lines over the budget are not even formatted');
      await new Promise((r) => setTimeout(r, 1100));
      assert.equal(printed[20], '[meshward] … 30 more request lines in the last second (all of them are in .meshward/logs/)');
    } finally {
      limiter.stop();
    }
  });
});
