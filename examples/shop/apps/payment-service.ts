// payment-service: charges, looks up and refunds payments, in memory. Every
// answer names its caller (the SPIFFE ID its proxy verified), so the demo
// shows who got through. Only order-service and billing-service may call it.

import { callerOf, serve, type Reply } from './lib.ts';

interface Payment {
  id: string;
  orderId: string | null;
  amount: number;
  status: 'captured' | 'refunded';
}

const payments = new Map<string, Payment>();
let next = 1;

serve('payment-service', (req, body): Reply => {
  const caller = callerOf(req);
  const path = new URL(req.url ?? '/', 'http://localhost').pathname;
  const id = path.split('/').at(-1) ?? '';

  if (req.method === 'POST' && path === '/api/v1/payments/charge') {
    const input = (body ?? {}) as { orderId?: string; amount?: number };
    const payment: Payment = { id: `pay-${next++}`, orderId: input.orderId ?? null, amount: Number(input.amount ?? 0), status: 'captured' };
    payments.set(payment.id, payment);
    return { status: 201, body: { ...payment, caller } };
  }
  if (req.method === 'GET' && path === '/api/v1/payments/summary') {
    const all = [...payments.values()];
    const total = all.filter((p) => p.status === 'captured').reduce((sum, p) => sum + p.amount, 0);
    return { status: 200, body: { count: all.length, total, caller } };
  }
  if (req.method === 'GET' && path.startsWith('/api/v1/payments/')) {
    const payment = payments.get(id);
    return payment ? { status: 200, body: { ...payment, caller } } : { status: 404, body: { error: `no payment ${id}`, caller } };
  }
  if (req.method === 'POST' && path.startsWith('/api/v1/refunds/')) {
    const payment = payments.get(id);
    if (!payment) return { status: 404, body: { error: `no payment ${id}`, caller } };
    payment.status = 'refunded';
    return { status: 200, body: { ...payment, caller } };
  }
  return { status: 404, body: { error: `no route for ${req.method} ${path}`, caller } };
});
