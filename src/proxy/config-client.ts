// The proxy's end of the config stream (see src/control/config/distributor.ts):
// connect with the workload's current SVID, name the workload, apply each
// push and answer ACK or NACK. When the stream breaks — the control plane
// restarted, or is gone — the proxy keeps enforcing the config it has and
// reconnects with backoff; each reconnect uses the certificate of the
// moment, so a rotation never leaves it dialing with an old one.

import { randomUUID } from 'node:crypto';
import { Client, credentials, type ClientDuplexStream } from '@grpc/grpc-js';
import { CONFIG_STREAM_PATH, MAX_CONFIG_BYTES, configService, type ConfigRequest, type ConfigResponse } from '../api/config-messages.ts';
import { checkCaIdentity } from '../identity/agent/ca-client.ts';

/** SNI sent to the control plane: its certificate carries a SPIFFE ID, checked below, not a DNS name. */
const CONTROL_PLANE_SERVER_NAME = 'meshward-ca';

export interface ConfigClientCredentials {
  readonly keyPem: string;
  readonly certChainPem: string;
  readonly bundlePem: string;
}

export type ApplyResult = { readonly ok: true } | { readonly ok: false; readonly error: string };

export interface ConfigClientOptions {
  /** `host:port` of the control plane. */
  readonly address: string;
  /** SPIFFE ID the control plane must present. */
  readonly controlPlaneIdentity: string;
  /** `namespace/name`. */
  readonly workload: string;
  readonly credentials: () => ConfigClientCredentials;
  /** Applies one pushed config (parsed JSON); never called concurrently. */
  readonly apply: (config: unknown, version: string) => Promise<ApplyResult>;
  /** Sent on the first message: a workload the control plane may not know yet. */
  readonly registration?: unknown;
  readonly log?: (level: 'info' | 'warn', event: string, fields: Readonly<Record<string, unknown>>) => void;
  /** Reconnect backoff: first delay and cap, ms. */
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number };
}

export class ConfigClient {
  readonly nodeId = randomUUID();
  readonly #opts: ConfigClientOptions;
  #client: Client | undefined;
  #call: ClientDuplexStream<ConfigRequest, ConfigResponse> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #attempt = 0;
  #stopped = false;
  #connected = false;
  #version = '';
  #applying: Promise<void> = Promise.resolve();

  constructor(opts: ConfigClientOptions) {
    this.#opts = opts;
  }

  /** True while a stream is open and has delivered a push. */
  get connected(): boolean {
    return this.#connected;
  }

  /** The version of the last config applied. */
  get version(): string {
    return this.#version;
  }

  start(): void {
    this.#connect();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#call?.cancel();
    this.#client?.close();
    await this.#applying;
  }

  #connect(): void {
    if (this.#stopped) return;
    let creds: ConfigClientCredentials;
    try {
      creds = this.#opts.credentials();
    } catch (err) {
      this.#retry(`no credentials: ${(err as Error).message}`);
      return;
    }
    const channel = credentials.createSsl(Buffer.from(creds.bundlePem), Buffer.from(creds.keyPem), Buffer.from(creds.certChainPem), {
      checkServerIdentity: (_host, cert) => checkCaIdentity(cert, this.#opts.controlPlaneIdentity),
    });
    this.#client?.close();
    const client = new Client(this.#opts.address, channel, {
      'grpc.ssl_target_name_override': CONTROL_PLANE_SERVER_NAME,
      'grpc.max_receive_message_length': MAX_CONFIG_BYTES,
      'grpc.use_local_subchannel_pool': 1,
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
    });
    this.#client = client;
    const method = configService().Stream!;
    const call = client.makeBidiStreamRequest<ConfigRequest, ConfigResponse>(CONFIG_STREAM_PATH, method.requestSerialize, method.responseDeserialize);
    this.#call = call;
    let ended = false;
    const end = (reason: string): void => {
      if (ended) return;
      ended = true;
      this.#connected = false;
      if (this.#call === call) this.#call = undefined;
      this.#retry(reason);
    };
    call.on('data', (push: ConfigResponse) => {
      this.#attempt = 0;
      this.#connected = true;
      this.#applying = this.#applying.then(() => this.#handle(call, push));
    });
    call.on('error', (err: Error) => end(err.message));
    call.on('end', () => end('stream ended'));
    call.write(this.#request('', '', this.#opts.registration === undefined ? '' : JSON.stringify(this.#opts.registration)));
  }

  async #handle(call: ClientDuplexStream<ConfigRequest, ConfigResponse>, push: ConfigResponse): Promise<void> {
    let result: ApplyResult;
    try {
      result = await this.#opts.apply(JSON.parse(push.config_json) as unknown, push.version_info);
    } catch (err) {
      result = { ok: false, error: (err as Error).message };
    }
    if (result.ok) this.#version = push.version_info;
    else this.#opts.log?.('warn', 'config-refused', { workload: this.#opts.workload, version: push.version_info, error: result.error });
    if (this.#call === call) call.write(this.#request(push.nonce, result.ok ? '' : result.error));
  }

  #request(nonce: string, error: string, registration = ''): ConfigRequest {
    return {
      workload: this.#opts.workload,
      node_id: this.nodeId,
      version_info: this.#version,
      response_nonce: nonce,
      error_detail: error,
      registration_json: registration,
    };
  }

  #retry(reason: string): void {
    if (this.#stopped) return;
    const { initialMs, maxMs } = this.#opts.backoff ?? { initialMs: 250, maxMs: 5000 };
    const base = Math.min(maxMs, initialMs * 2 ** this.#attempt);
    this.#attempt++;
    // Full jitter on the upper half, so proxies that lost the same control plane do not return in step.
    const delay = base / 2 + Math.random() * (base / 2);
    this.#opts.log?.('warn', 'config-stream-retry', { workload: this.#opts.workload, reason, inMs: Math.round(delay) });
    this.#timer = setTimeout(() => this.#connect(), delay);
  }
}
