// The config stream's wire contract, shared by the control plane (server)
// and the proxy (client): message shapes as @grpc/proto-loader decodes them
// and the service definition loaded from ./proto/meshward-config.proto.

import { packageFile } from '../lib/installation.ts';
import { loadSync } from '@grpc/proto-loader';
import type { ServiceDefinition } from '@grpc/grpc-js';

export const CONFIG_SERVICE = 'meshward.config.v1.ProxyConfigService';
export const CONFIG_STREAM_PATH = `/${CONFIG_SERVICE}/Stream`;

export interface ConfigRequest {
  workload: string;
  node_id: string;
  version_info: string;
  response_nonce: string;
  error_detail: string;
  registration_json: string;
}

export interface ConfigResponse {
  version_info: string;
  nonce: string;
  config_json: string;
}

/** A config carries the workload's policy; 16 MiB leaves room for thousands of resources. */
export const MAX_CONFIG_BYTES = 16 * 1024 * 1024;

let definition: ServiceDefinition | undefined;

/** Loads the proto once per process. */
export function configService(): ServiceDefinition {
  if (definition) return definition;
  const file = packageFile('src', 'api', 'proto', 'meshward-config.proto');
  const pkg = loadSync(file, { keepCase: true, longs: String, enums: String, defaults: true, arrays: true, objects: true, oneofs: true });
  definition = pkg[CONFIG_SERVICE] as ServiceDefinition;
  return definition;
}
