// An experiment, not part of meshward: loaded into the meshward proxies with
// `npx node bench/two-hop.ts --meshward-import bench/two-hop/nodelay.ts`, it
// turns on TCP_NODELAY for every socket the process opens or accepts (Nagle's
// algorithm off), which src/ does not do today for the mTLS connections
// between proxies. Comparing a run with and without it measures what Nagle
// plus delayed ACKs cost the HTTP/2-over-mTLS hop.

import net from 'node:net';

const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function (this: net.Socket, ...args: unknown[]) {
  // Before connect: node keeps the flag and applies it once connected.
  this.setNoDelay(true);
  return (connect as (...a: unknown[]) => net.Socket).apply(this, args);
} as typeof connect;

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (this: net.Server & { noDelay: boolean }, ...args: unknown[]) {
  // net.Server reads this when it accepts a connection.
  this.noDelay = true;
  return (listen as (...a: unknown[]) => net.Server).apply(this, args);
} as typeof listen;
