// reporting-service: asks payment-service for a summary. The policies do not
// let it: its proxy carries the call over mTLS, payment-service's proxy
// verifies who is calling and refuses with 403 "RBAC: access denied". The
// report says what happened instead of failing, which is the point of the demo.

import { call, callerOf, serve, upstream, type Reply } from './lib.ts';

const payments = upstream('PAYMENT_SERVICE');

serve('reporting-service', async (req): Promise<Reply> => {
  const caller = callerOf(req);
  if (req.method === 'GET' && req.url === '/api/v1/reports') {
    const summary = await call(payments, 'GET', '/api/v1/payments/summary');
    return {
      status: 200,
      body: { payments: summary.ok ? 'answered' : 'refused', status: summary.status, body: summary.body, caller },
    };
  }
  return { status: 404, body: { error: `no route for ${req.method} ${req.url}`, caller } };
});
