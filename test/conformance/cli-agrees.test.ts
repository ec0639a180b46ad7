// The golden runner decides in-process; this runs a handful of the same
// cases through the real `meshward authz check` process (resources from a
// file, the request on stdin, -o json) and checks that the process prints
// exactly what the in-process path returns, and that both match Istio.
// Five spawns, two at a time: one per kind of outcome.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runMeshward } from '../support/cli.ts';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { decide, loadCaseFiles, mismatches, type GoldenCase, type GoldenFile } from './golden.ts';


/** One case per outcome: ALLOW, 403 at authorization, reset at peer authentication, 400 at normalization, 401 with a real JWT. */
const PICKS: readonly (readonly [file: string, name: string])[] = [
  ['explicit-deny/deny-get-unless-admin.yaml', 'GET with x-token admin is allowed'],
  ['explicit-deny/deny-get-unless-admin.yaml', 'GET with x-token guest is denied'],
  ['mtls/namespace-strict.yaml', 'plaintext from legacy to foo is reset'],
  ['normalization/base.yaml', 'an escaped NUL is refused with 400'],
  ['jwt/request-authentication-only.yaml', 'a token signed by a foreign key is rejected with 401'],
];

function meshward(args: readonly string[], stdin: string) {
  return runMeshward(args, { stdin });
}

const loaded = await loadCaseFiles();

function pick(fileId: string, name: string): { file: GoldenFile; c: GoldenCase } {
  const entry = loaded.find((e) => e.id === fileId);
  if (entry === undefined) throw new Error(`no case file ${fileId}`);
  if ('error' in entry) throw new Error(entry.error);
  const c = entry.file.cases.find((x) => x.name === name);
  if (c === undefined) throw new Error(`${fileId} has no case "${name}"`);
  return { file: entry.file, c };
}

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'meshward-conformance-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('the CLI process and the in-process runner agree', { concurrency: 2 }, () => {
  PICKS.forEach(([fileId, name], i) => {
    it(`${fileId} › ${name}`, async () => {
      const { file, c } = pick(fileId, name);
      const resources = join(dir, `resources-${i}.yaml`);
      await writeFile(resources, file.resourcesText);
      const [run, inProcess] = await Promise.all([
        meshward(['authz', 'check', '-f', resources, '--request', '-', '-o', 'json'], JSON.stringify(c.request)),
        decide(file, c),
      ]);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stdout.trim().split('\n').length, 1, 'stdout must hold exactly one JSON object');
      const printed = JSON.parse(run.stdout) as Record<string, unknown>;
      assert.deepEqual(printed, inProcess);
      assert.deepEqual(mismatches(c.expect, printed), []);
    });
  });
});
