// The outbound side's public surface: the router, and what its metrics and
// errors are called.
export { OutboundRouter, type OutboundRouterOptions } from './router.ts';
export { CONNECT_ERROR_BODY } from './http-forward.ts';
export { REQUEST_LABELS, TCP_LABELS, type UpstreamFailure } from './metrics.ts';
