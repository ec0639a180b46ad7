import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  cidrContains,
  compileCidrSet,
  formatCidr,
  formatIp,
  parseCidr,
  parseIp,
  type CidrRange,
} from '../../../src/lib/cidr.ts';

function range(text: string): CidrRange {
  const r = parseCidr(text);
  if ('error' in r) throw new Error(`${text}: ${r.error}`);
  return r;
}

function ip(text: string, keepV4Mapped = false) {
  const p = parseIp(text, keepV4Mapped);
  if (p === null) throw new Error(`${text} did not parse`);
  return p;
}

function v4(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

describe('parseIp: IPv4 near misses', () => {
  const pairs: [string, string][] = [
    ['255.255.255.255', '256.255.255.255'],
    ['10.0.0.1', '999.1.1.1'],
    ['10.0.0.1', '010.0.0.1'],
    ['10.0.0.0', '10.00.0.0'],
    ['0.0.0.0', '0.0.0.00'],
    ['1.2.3.4', '1.2.3'],
    ['1.2.3.4', '1.2.3.4.5'],
    ['1.2.3.4', '1.2.3.'],
    ['1.2.3.4', '.1.2.3'],
    ['1.2.3.4', '1..3.4'],
    ['1.2.3.4', ' 1.2.3.4'],
    ['1.2.3.4', '1.2.3.4 '],
    ['1.2.3.4', '1.2.3.4/32'],
    ['1.2.3.4', '0x1.2.3.4'],
    ['1.2.3.4', '+1.2.3.4'],
    ['127.0.0.1', '127.1'],
  ];
  for (const [good, bad] of pairs) {
    it(`accepts ${JSON.stringify(good)}, rejects ${JSON.stringify(bad)}`, () => {
      assert.notEqual(parseIp(good), null);
      assert.equal(parseIp(bad), null);
    });
  }

  it('reads the octets most significant first', () => {
    assert.deepEqual(ip('10.1.2.3'), { family: 4, w0: 0x0a010203, w1: 0, w2: 0, w3: 0 });
    assert.equal(ip('255.255.255.255').w0, 0xffffffff);
  });
});

describe('parseIp: IPv6 near misses', () => {
  const pairs: [string, string][] = [
    ['fe80::1', 'fe80::1%eth0'],
    ['::1', '[::1]'],
    ['1::3', '1::2::3'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8:9'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7'],
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:8::'],
    ['ffff::', '1ffff::'],
    ['::', ':::'],
    ['1::', '1:'],
    ['::1', ':1'],
    ['::ffff:1.2.3.4', '::ffff:1.2.3.04'],
    ['::ffff:1.2.3.4', '::ffff:1.2.3.4:5'],
    ['1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:7:1.2.3.4'],
    ['::1.2.3.4', '::1.2.3'],
    ['2001:DB8::1', '2001:DG8::1'],
    ['::', ''],
  ];
  for (const [good, bad] of pairs) {
    it(`accepts ${JSON.stringify(good)}, rejects ${JSON.stringify(bad)}`, () => {
      assert.notEqual(parseIp(good), null);
      assert.equal(parseIp(bad), null);
    });
  }

  it('places the groups around "::"', () => {
    assert.deepEqual(ip('2001:db8::1'), { family: 6, w0: 0x20010db8, w1: 0, w2: 0, w3: 1 });
    assert.deepEqual(ip('1::'), { family: 6, w0: 0x00010000, w1: 0, w2: 0, w3: 0 });
    assert.deepEqual(ip('1:2:3:4:5:6:1.2.3.4'), { family: 6, w0: 0x00010002, w1: 0x00030004, w2: 0x00050006, w3: 0x01020304 });
  });
});

describe('IPv4-mapped IPv6, as Envoy treats a dual-stack socket peer', () => {
  const tenSlash8 = compileCidrSet([range('10.0.0.0/8')]);

  it('unmaps ::ffff:a.b.c.d by default, so it matches 10.0.0.0/8', () => {
    assert.deepEqual(ip('::ffff:10.0.0.1'), ip('10.0.0.1'));
    assert.equal(tenSlash8(ip('::ffff:10.0.0.1')), true);
    assert.equal(tenSlash8(ip('::ffff:11.0.0.1')), false);
  });

  it('unmaps the hex spelling too', () => {
    assert.deepEqual(ip('::ffff:a00:1'), ip('10.0.0.1'));
  });

  it('keeps it IPv6 when asked (text from headers), and then 10.0.0.0/8 does not match', () => {
    assert.equal(ip('::ffff:10.0.0.1', true).family, 6);
    assert.equal(tenSlash8(ip('::ffff:10.0.0.1', true)), false);
  });

  it('does not unmap near misses: ::fffe:… and the IPv4-compatible ::a.b.c.d stay IPv6', () => {
    assert.equal(ip('::fffe:10.0.0.1').family, 6);
    assert.equal(ip('::10.0.0.1').family, 6);
    assert.equal(ip('0:0:0:0:1:ffff:10.0.0.1').family, 6);
  });

  it('never unmaps a range: ::ffff:10.0.0.0/104 is IPv6 and matches only kept-mapped addresses', () => {
    const mapped = range('::ffff:10.0.0.0/104');
    assert.equal(mapped.family, 6);
    assert.equal(cidrContains(mapped, ip('10.0.0.1')), false);
    assert.equal(cidrContains(mapped, ip('::ffff:10.0.0.1', true)), true);
  });
});

describe('parseCidr', () => {
  const pairs: [string, string][] = [
    ['10.0.0.0/32', '10.0.0.0/33'],
    ['10.0.0.0/0', '10.0.0.0/-1'],
    ['10.0.0.0/8', '10.0.0.0/08'],
    ['10.0.0.0/8', '10.0.0.0/+8'],
    ['10.0.0.0/8', '10.0.0.0/'],
    ['10.0.0.0/8', '10.0.0.0/8/8'],
    ['10.0.0.0/8', '10.0.0.0/ 8'],
    ['10.0.0.0/8', '010.0.0.0/8'],
    ['::/128', '::/129'],
    ['fe80::/10', 'fe80::%eth0/10'],
    ['1.2.3.4', '1.2.3.4.'],
  ];
  for (const [good, bad] of pairs) {
    it(`accepts ${JSON.stringify(good)}, rejects ${JSON.stringify(bad)}`, () => {
      assert.equal('error' in parseCidr(good), false);
      assert.equal('error' in parseCidr(bad), true);
    });
  }

  it('says which part is wrong', () => {
    const bad = parseCidr('10.0.0.0/33');
    assert.ok('error' in bad && bad.error.includes('0 to 32'));
    const badAddress = parseCidr('10.0.0.256/8');
    assert.ok('error' in badAddress && badAddress.error.includes('IPv4'));
    assert.deepEqual(parseCidr(''), { error: 'empty address' });
  });

  it('reads a bare address as /32 or /128', () => {
    assert.equal(formatCidr(range('1.2.3.4')), '1.2.3.4/32');
    assert.equal(formatCidr(range('2001:db8::1')), '2001:db8::1/128');
  });

  it('truncates host bits, as netip and Envoy do', () => {
    assert.deepEqual(range('10.1.2.3/8'), range('10.0.0.0/8'));
    assert.equal(formatCidr(range('2001:db8:ffff::1/32')), '2001:db8::/32');
  });

  it('formats canonically', () => {
    assert.equal(formatCidr(range('2001:0DB8:0000:0000:0000:0000:0000:0001/128')), '2001:db8::1/128');
    assert.equal(formatCidr(range('1:0:0:2:0:0:0:3/128')), '1:0:0:2::3/128');
    assert.equal(formatCidr(range('::/0')), '::/0');
    assert.equal(formatIp(ip('1:2:3:4:5:6:7:8')), '1:2:3:4:5:6:7:8');
  });
});

describe('cidrContains and compileCidrSet', () => {
  it('never matches across families', () => {
    assert.equal(cidrContains(range('0.0.0.0/0'), ip('::1')), false);
    assert.equal(cidrContains(range('::/0'), ip('10.0.0.1')), false);
    assert.equal(compileCidrSet([range('0.0.0.0/0')])(ip('::1')), false);
    assert.equal(compileCidrSet([range('::/0')])(ip('10.0.0.1')), false);
  });

  it('matches nothing when empty', () => {
    const none = compileCidrSet([]);
    assert.equal(none(ip('10.0.0.1')), false);
    assert.equal(none(ip('::1')), false);
  });

  it('covers the whole space with /0', () => {
    const all = compileCidrSet([range('0.0.0.0/0'), range('::/0')]);
    for (const a of ['0.0.0.0', '255.255.255.255', '::', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff']) {
      assert.equal(all(ip(a)), true, a);
    }
  });

  it('merges adjacent and overlapping IPv4 ranges without widening them', () => {
    const set = compileCidrSet([range('10.128.0.0/9'), range('10.0.0.0/9'), range('10.1.0.0/16'), range('192.168.1.0/24')]);
    assert.equal(set(ip('10.0.0.0')), true);
    assert.equal(set(ip('10.255.255.255')), true);
    assert.equal(set(ip('9.255.255.255')), false);
    assert.equal(set(ip('11.0.0.0')), false);
    assert.equal(set(ip('192.168.1.255')), true);
    assert.equal(set(ip('192.168.2.0')), false);
  });

  it('bounds IPv6 ranges exactly', () => {
    const set = compileCidrSet([range('2001:db8::/32'), range('fe80::/127')]);
    assert.equal(set(ip('2001:db8:ffff:ffff:ffff:ffff:ffff:ffff')), true);
    assert.equal(set(ip('2001:db9::')), false);
    assert.equal(set(ip('2001:db7:ffff:ffff:ffff:ffff:ffff:ffff')), false);
    assert.equal(set(ip('fe80::1')), true);
    assert.equal(set(ip('fe80::2')), false);
  });

  it('property: a random IPv4 address in a range matches; the addresses just outside do not', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 1, max: 32 }), fc.double({ min: 0, max: 1, noNaN: true }), (base, bits, at) => {
        const r = range(`${v4(base)}/${bits}`);
        const size = 2 ** (32 - bits);
        const first = r.w0;
        const last = first + size - 1;
        const inside = first + Math.min(size - 1, Math.floor(at * size));
        const set = compileCidrSet([r]);
        assert.equal(set(ip(v4(inside))), true);
        assert.equal(cidrContains(r, ip(v4(inside))), true);
        if (first > 0) {
          assert.equal(set(ip(v4(first - 1))), false);
          assert.equal(cidrContains(r, ip(v4(first - 1))), false);
        }
        if (last < 0xffffffff) {
          assert.equal(set(ip(v4(last + 1))), false);
          assert.equal(cidrContains(r, ip(v4(last + 1))), false);
        }
      }),
    );
  });

  it('property: a compiled set answers as the ranges do one by one', () => {
    const v6Text = fc
      .array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 })
      .map((g) => g.map((n) => n.toString(16)).join(':'));
    const anyRange = fc.oneof(
      fc.tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 32 })).map(([a, b]) => `${v4(a)}/${b}`),
      fc.tuple(v6Text, fc.integer({ min: 0, max: 128 })).map(([a, b]) => `${a}/${b}`),
    );
    const anyIp = fc.oneof(fc.integer({ min: 0, max: 0xffffffff }).map(v4), v6Text);
    fc.assert(
      fc.property(fc.array(anyRange, { maxLength: 6 }), fc.array(anyIp, { minLength: 1, maxLength: 6 }), (rangeTexts, ips) => {
        const ranges = rangeTexts.map(range);
        const set = compileCidrSet(ranges);
        for (const text of ips) {
          const a = ip(text, true);
          assert.equal(set(a), ranges.some((r) => cidrContains(r, a)), `${text} in ${rangeTexts.join(',')}`);
        }
      }),
    );
  });

  it('property: formatting and parsing again gives the same range', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 }),
        fc.integer({ min: 0, max: 128 }),
        (groups, bits) => {
          const r = range(`${groups.map((n) => n.toString(16)).join(':')}/${bits}`);
          assert.deepEqual(range(formatCidr(r)), r);
        },
      ),
    );
  });
});
