// order-service: the shop's front door behind the ingress gateway. Creating
// an order charges the payment and asks billing for an invoice, both through
// the mesh. When a downstream call fails, the reply carries its status and
// body, so a refusal by the mesh (403 RBAC: access denied) is visible.

import { call, callerOf, serve, upstream, type Reply } from './lib.ts';

const payments = upstream('PAYMENT_SERVICE');
const billing = upstream('BILLING_SERVICE');
const orders: unknown[] = [];

serve('order-service', async (req, body): Promise<Reply> => {
  const caller = callerOf(req);
  const path = new URL(req.url ?? '/', 'http://localhost').pathname;
  if (path !== '/api/v1/orders') return { status: 404, body: { error: `no route for ${req.method} ${path}`, caller } };
  if (req.method === 'GET') return { status: 200, body: { orders, caller } };
  if (req.method !== 'POST') return { status: 405, body: { error: 'use GET or POST', caller } };

  const input = (body ?? {}) as { item?: string; amount?: number };
  const orderId = `ord-${orders.length + 1}`;
  const amount = Number(input.amount ?? 10);
  const payment = await call(payments, 'POST', '/api/v1/payments/charge', { orderId, amount });
  if (!payment.ok) return { status: 502, body: { error: 'payment-service refused the charge', downstream: payment, caller } };
  const paymentId = (payment.body as { id?: string }).id;
  const invoice = await call(billing, 'POST', '/api/v1/invoices', { orderId, paymentId, amount });
  if (!invoice.ok) return { status: 502, body: { error: 'billing-service refused the invoice', downstream: invoice, caller } };
  const order = { id: orderId, item: input.item ?? 'demo item', amount, payment: payment.body, invoice: invoice.body };
  orders.push(order);
  return { status: 201, body: { ...order, caller } };
});
