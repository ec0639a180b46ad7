// prom-client's metric classes taken from its own files (src/lib/prometheus.ts):
// they must be the package's classes, so that what they create is what a
// prom-client Registry reads, and taking them must not evaluate the rest
// of the package's entry point.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as promClient from 'prom-client';
import { Counter, Gauge, Histogram, Registry } from '../../../src/lib/prometheus.ts';

describe('prom-client classes without its entry point', () => {
  it('are the classes the package exports', () => {
    assert.equal(Registry, promClient.Registry);
    assert.equal(Counter, promClient.Counter);
    assert.equal(Gauge, promClient.Gauge);
    assert.equal(Histogram, promClient.Histogram);
  });

  it('make series a registry prints in the exposition format', async () => {
    const registry = new Registry();
    new Counter({ name: 'meshward_test_total', help: 'A counter.', labelNames: ['code'], registers: [registry] }).inc({ code: '200' }, 2);
    new Gauge({ name: 'meshward_test_gauge', help: 'A gauge.', registers: [registry] }).set(7);
    new Histogram({ name: 'meshward_test_ms', help: 'A histogram.', buckets: [1, 10], registers: [registry] }).observe(5);
    const text = await registry.metrics();
    assert.match(text, /^meshward_test_total\{code="200"\} 2$/m);
    assert.match(text, /^meshward_test_gauge 7$/m);
    assert.match(text, /^meshward_test_ms_bucket\{le="1"\} 0$/m);
    assert.match(text, /^meshward_test_ms_bucket\{le="10"\} 1$/m);
    assert.match(text, /^meshward_test_ms_count 1$/m);
  });

  it('do not load the Pushgateway client, the cluster aggregator or the default metrics', () => {
    const module = JSON.stringify(new URL('../../../src/lib/prometheus.ts', import.meta.url).href);
    const script = `
      import { createRequire } from 'node:module';
      await import(${module});
      const loaded = Object.keys(createRequire(import.meta.url).cache).filter((f) => f.includes('prom-client'));
      console.log(JSON.stringify(loaded.map((f) => f.slice(f.indexOf('prom-client')))));
    `;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(child.status, 0, child.stderr);
    const loaded = JSON.parse(child.stdout) as string[];
    assert.ok(loaded.includes('prom-client/lib/counter.js'), `loaded: ${loaded.join(', ')}`);
    for (const unwanted of ['prom-client/index.js', 'prom-client/lib/pushgateway.js', 'prom-client/lib/cluster.js', 'prom-client/lib/defaultMetrics.js']) {
      assert.ok(!loaded.includes(unwanted), `${unwanted} was loaded`);
    }
  });
});
