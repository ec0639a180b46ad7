// `meshward validate -f FILE|DIR ...`: every error in every file, then a
// non-zero exit if there was any.

import { loadResources } from '../api/load.ts';
import { formatDiagnostic } from '../api/diagnostics.ts';
import { EXIT_FINDINGS, EXIT_OK } from './io.ts';

export async function runValidate(paths: readonly string[]): Promise<number> {
  const { resources, diagnostics } = loadResources(paths);
  for (const d of diagnostics) process.stderr.write(`${formatDiagnostic(d)}\n`);
  const errors = diagnostics.filter((d) => d.severity === 'error').length;
  const count =
    resources.peerAuthentications.length +
    resources.authorizationPolicies.length +
    resources.requestAuthentications.length +
    resources.destinationRules.length;
  if (errors > 0) {
    process.stdout.write(`${errors} error(s); ${count} valid resource(s)\n`);
    return EXIT_FINDINGS;
  }
  process.stdout.write(`${count} resource(s) valid\n`);
  return EXIT_OK;
}
