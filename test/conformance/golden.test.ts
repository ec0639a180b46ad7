// Golden conformance: every case under cases/ is decided exactly as
// `meshward authz check -o json` decides it (loadResourcesFromText →
// parseAuthzCheckRequest → PolicyEngine.check → decisionJson) and compared
// with what Istio does. A case marked knownDifference is reported as todo:
// meshward is known to differ there, and the case says why.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { decide, describeMismatch, loadCaseFiles, mismatches } from './golden.ts';

const loaded = await loadCaseFiles();

it('finds case files', () => {
  assert.ok(loaded.length > 0, 'no case files under test/conformance/cases');
});

for (const entry of loaded) {
  if ('error' in entry) {
    it(entry.id, () => assert.fail(entry.error));
    continue;
  }
  const file = entry.file;
  describe(file.id, () => {
    for (const c of file.cases) {
      const options = c.knownDifference !== undefined ? { todo: `known difference from Istio: ${c.knownDifference}` } : {};
      it(c.name, options, async () => {
        const actual = await decide(file, c);
        const problems = mismatches(c.expect, actual);
        if (c.knownDifference !== undefined && problems.length === 0) {
          assert.fail(`${file.id} › ${c.name}: meshward now agrees with Istio; remove knownDifference`);
        }
        if (problems.length > 0) assert.fail(describeMismatch(file, c, problems, actual));
      });
    }
  });
}
