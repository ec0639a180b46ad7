// billing-service: issues an invoice for a payment, after asking
// payment-service (through the mesh) to confirm the payment exists. Only
// order-service may ask for invoices.

import { call, callerOf, serve, upstream, type Reply } from './lib.ts';

const payments = upstream('PAYMENT_SERVICE');
const invoices: unknown[] = [];

serve('billing-service', async (req, body): Promise<Reply> => {
  const caller = callerOf(req);
  if (req.method === 'POST' && req.url === '/api/v1/invoices') {
    const input = (body ?? {}) as { orderId?: string; paymentId?: string; amount?: number };
    const payment = await call(payments, 'GET', `/api/v1/payments/${encodeURIComponent(input.paymentId ?? '')}`);
    if (!payment.ok) return { status: 502, body: { error: 'payment-service did not confirm the payment', downstream: payment, caller } };
    const invoice = { id: `inv-${invoices.length + 1}`, orderId: input.orderId ?? null, paymentId: input.paymentId, amount: input.amount ?? 0 };
    invoices.push(invoice);
    return { status: 201, body: { ...invoice, confirmedBy: payment.body, caller } };
  }
  return { status: 404, body: { error: `no route for ${req.method} ${req.url}`, caller } };
});
