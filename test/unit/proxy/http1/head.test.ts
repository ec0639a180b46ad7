// The fast lane's parsers: what they take, and that everything ambiguous is
// left to node's full parser ('unsupported') rather than read a second way.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CRLFCRLF, findHeadEnd, parseRequestHead, parseResponseHead, responseHeadText, writeResponseHead, type RequestHead, type ResponseHead } from '../../../../src/proxy/http1/head.ts';
import { ChunkedScanner } from '../../../../src/proxy/http1/chunked.ts';

const req = (text: string, maxBytes = 16_384, maxCount = 100): RequestHead | string => parseRequestHead(Buffer.from(text, 'latin1'), 0, maxBytes, maxCount);
const res = (text: string): ResponseHead | string => parseResponseHead(Buffer.from(text, 'latin1'), 0, 60_000);

describe('the end of a head', () => {
  it('is found where Buffer#indexOf finds it, from any start, before and past the part scanned in JavaScript', () => {
    // Mostly CR and LF, so that near-misses (CRLF CR, LF CRLF) are common; lengths around the 512-byte scan.
    const bytes = fc.array(fc.constantFrom(0x0d, 0x0a, 0x0d, 0x0a, 0x41), { minLength: 0, maxLength: 1100 });
    fc.assert(
      fc.property(bytes, fc.nat(1100), (b, at) => {
        const buf = Buffer.from(b);
        const start = Math.min(at, buf.length);
        assert.equal(findHeadEnd(buf, start), buf.indexOf(CRLFCRLF, start));
      }),
      { numRuns: 3000 },
    );
  });

  it('finds a match that straddles the end of the part scanned in JavaScript', () => {
    for (let k = 505; k <= 515; k++) {
      const buf = Buffer.concat([Buffer.alloc(k, 0x41), CRLFCRLF, Buffer.from('x')]);
      assert.equal(findHeadEnd(buf, 0), k);
      assert.equal(findHeadEnd(buf, 3), k);
    }
    assert.equal(findHeadEnd(Buffer.from('\r\n\r'), 0), -1);
  });
});

describe('fast lane request heads', () => {
  it('takes a simple request: method, target, headers in order, Host apart, body length, end offset', () => {
    const text = 'POST /pay?id=7 HTTP/1.1\r\nHost: payment\r\nUser-Agent: wrk\r\nContent-Length: 5\r\nX-A: 1\r\nX-A: 2\r\n\r\nhello';
    const h = req(text) as RequestHead;
    assert.equal(h.method, 'POST');
    assert.equal(h.target, '/pay?id=7');
    assert.equal(h.host, 'payment');
    assert.equal(h.userAgent, 'wrk');
    assert.equal(h.contentLength, 5);
    assert.deepEqual(h.names, ['user-agent', 'content-length', 'x-a', 'x-a']);
    assert.deepEqual(h.values, ['wrk', '5', '1', '2']);
    assert.equal(h.count, 5);
    assert.equal(text.slice(h.end), 'hello');
    assert.equal(h.close, false);
  });

  it('notes Connection: close, and keeps hop-by-hop headers for the engine (the forwarder drops them)', () => {
    const h = req('GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nTE: trailers\r\n\r\n') as RequestHead;
    assert.equal(h.close, true);
    assert.deepEqual(h.names, ['connection', 'te']);
  });

  it('waits for the rest of a head, and gives up waiting past the size limit', () => {
    assert.equal(req('GET / HTTP/1.1\r\nHost: a\r\n'), 'incomplete');
    assert.equal(req(`GET / HTTP/1.1\r\nHost: a\r\nX: ${'a'.repeat(200)}`, 100), 'unsupported');
    assert.equal(req(`GET / HTTP/1.1\r\nHost: a\r\nX: ${'a'.repeat(200)}\r\n\r\n`, 100), 'unsupported');
    assert.equal(req('GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n', 16_384, 2), 'unsupported');
  });

  const leftToNode: Record<string, string> = {
    'Transfer-Encoding': 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n',
    'Content-Length with Transfer-Encoding': 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n',
    'two Content-Lengths': 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n',
    'a Content-Length that is not digits': 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n',
    'a space before the colon': 'GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 3\r\n\r\n',
    'obs-fold': 'GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n',
    'a bare LF': 'GET / HTTP/1.1\nHost: a\r\n\r\n',
    'a bare LF between headers': 'GET / HTTP/1.1\r\nHost: a\nX: 1\r\n\r\n',
    'a CR inside a value': 'GET / HTTP/1.1\r\nHost: a\r\nX: 1\r2\r\n\r\n',
    'a NUL inside a value': 'GET / HTTP/1.1\r\nHost: a\r\nX: 1\x002\r\n\r\n',
    'no Host': 'GET / HTTP/1.1\r\nX: 1\r\n\r\n',
    'two Hosts': 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n',
    'HTTP/1.0': 'GET / HTTP/1.0\r\nHost: a\r\n\r\n',
    'absolute form': 'GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n',
    'asterisk form': 'OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n',
    CONNECT: 'CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n',
    Upgrade: 'GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n',
    Expect: 'POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n',
    'a Connection option naming a header': 'GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, x-hop\r\nX-Hop: 1\r\n\r\n',
    'a space in the target': 'GET /a b HTTP/1.1\r\nHost: a\r\n\r\n',
    'a lower-case version': 'GET / http/1.1\r\nHost: a\r\n\r\n',
    'an empty header name': 'GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n',
  };
  for (const [what, text] of Object.entries(leftToNode)) {
    it(`leaves ${what} to node's parser`, () => assert.equal(req(text), 'unsupported'));
  }
});

describe('fast lane response heads', () => {
  it('re-serializes status and end-to-end headers, and reads the framing', () => {
    const h = res('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\nhello') as ResponseHead;
    assert.equal(h.status, 200);
    assert.equal(responseHeadText(h), 'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5');
    assert.equal(h.framing, 'length');
    assert.equal(h.contentLength, 5);
    assert.equal(h.keepAliveMs, 5000);
    assert.equal(h.close, false);
  });

  it('Transfer-Encoding wins over Content-Length, which is dropped; another coding reads until close', () => {
    const chunked = res('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n') as ResponseHead;
    assert.equal(chunked.framing, 'chunked');
    assert.equal(responseHeadText(chunked), 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked');
    assert.equal((res('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n') as ResponseHead).framing, 'close');
    assert.equal((res('HTTP/1.1 200 OK\r\n\r\n') as ResponseHead).framing, 'close');
  });

  it('drops the headers the server\'s Connection names, and notes close and HTTP/1.0', () => {
    const h = res('HTTP/1.1 200 OK\r\nConnection: close, x-hop\r\nX-Hop: 1\r\nX-Keep: 2\r\nContent-Length: 0\r\n\r\n') as ResponseHead;
    assert.equal(h.close, true);
    assert.equal(responseHeadText(h), 'HTTP/1.1 200 OK\r\nx-keep: 2\r\ncontent-length: 0');
    assert.equal((res('HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n') as ResponseHead).close, true);
  });

  it('drops hop-by-hop headers in any case, lower-cases names, trims values and answers as HTTP/1.1', () => {
    const h = res(
      'HTTP/1.0 201 Created Here\r\nX-Trace-ID:  a b \t\r\nPROXY-Connection: x\r\nTE: trailers\r\nUpGrade: h2c\r\nKEEP-ALIVE: Timeout=7\r\nHTTP2-Settings: x\r\nProxy-Authenticate: Basic\r\nProxy-Authorization: y\r\nConnection: Keep-Alive, X-Named\r\nx-NAMED: 1\r\nContent-Length: 0\r\n\r\n',
    ) as ResponseHead;
    assert.equal(responseHeadText(h), 'HTTP/1.1 201 Created Here\r\nx-trace-id: a b\r\ncontent-length: 0');
    assert.equal(h.size, responseHeadText(h).length);
    assert.equal(h.keepAliveMs, 7000);
    assert.equal(h.close, false, 'HTTP/1.0 with keep-alive stays open');
    assert.equal(h.framing, 'length');
  });

  it('reads Keep-Alive and Connection in their usual and unusual forms alike', () => {
    const ka = (value: string): number => (res(`HTTP/1.1 200 OK\r\nKeep-Alive: ${value}\r\nContent-Length: 0\r\n\r\n`) as ResponseHead).keepAliveMs;
    assert.equal(ka('timeout=60'), 60_000);
    assert.equal(ka('TimeOut=7'), 7000);
    assert.equal(ka('timeout=5, max=100'), 5000);
    assert.equal(ka('max=100, timeout=3'), 3000);
    assert.equal(ka('timeout=x'), -1);
    assert.equal(ka('timeout='), -1);
    const closes = (version: string, connection: string): boolean =>
      (res(`HTTP/${version} 200 OK\r\nConnection: ${connection}\r\nContent-Length: 0\r\n\r\n`) as ResponseHead).close;
    assert.equal(closes('1.0', 'keep-alive'), false);
    assert.equal(closes('1.0', 'Keep-Alive'), false);
    assert.equal(closes('1.0', 'keep-alives'), true);
    assert.equal(closes('1.1', 'keep-alive'), false);
    assert.equal(closes('1.1', 'CLOSE'), true);
    assert.equal(closes('1.1', 'keep-alive, close'), true);
  });

  it('takes every method token, and only HTTP/1.1 byte for byte', () => {
    for (const method of ['GET', 'GETS', 'GE', 'POST', 'get', 'M-SEARCH']) {
      assert.equal((req(`${method} / HTTP/1.1\r\nHost: a\r\n\r\n`) as RequestHead).method, method);
    }
    for (const version of ['HTTP/1.0', 'HTTP/1.2', 'HTTP/1.1 ', 'HTTP/11.']) assert.equal(req(`GET / ${version}\r\nHost: a\r\n\r\n`), 'unsupported', version);
  });

  it('keeps names that only look like hop-by-hop ones', () => {
    const h = res('HTTP/1.1 204 No Content\r\nTe_: 1\r\nConnectio: 2\r\nContent-Lengths: 3\r\nX-Upgrade: 4\r\n\r\n') as ResponseHead;
    assert.equal(responseHeadText(h), 'HTTP/1.1 204 No Content\r\nte_: 1\r\nconnectio: 2\r\ncontent-lengths: 3\r\nx-upgrade: 4');
    assert.equal(h.framing, 'close');
  });

  it('writes the head into a buffer at an offset, from the bytes it was read from', () => {
    const h = res('HTTP/1.1 200\r\nA: 1\r\n\r\n') as ResponseHead;
    const out = Buffer.alloc(h.size + 2, 0x2e);
    assert.equal(writeResponseHead(h, out, 1), 1 + h.size);
    assert.equal(out.toString('latin1'), '.HTTP/1.1 200\r\na: 1.');
  });

  it('refuses what it cannot frame', () => {
    for (const text of [
      'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n',
      'HTTP/1.1 2x0 OK\r\n\r\n',
      'HTTP/2 200 OK\r\n\r\n',
      'HTTP/1.1 200 OK\r\nX: 1\r\n 2\r\n\r\n',
      'HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n',
    ]) {
      assert.equal(res(text), 'unsupported', JSON.stringify(text));
    }
  });
});

describe('chunked body scanner', () => {
  it('finds the end of a body with extensions and trailers, across any split', () => {
    const body = Buffer.from('5;name=v\r\nhello\r\n0\r\nx-checksum: 1\r\n\r\nNEXT');
    const end = body.length - 4;
    for (let split = 1; split < end; split++) {
      const s = new ChunkedScanner();
      assert.equal(s.scan(body.subarray(0, split), 0), -1, `split ${split}`);
      assert.equal(s.scan(body.subarray(split), 0) + split, end, `split ${split}`);
    }
  });

  it('refuses bad framing', () => {
    for (const text of ['x\r\n', '5\r\nhelloX\r\n', '5\nhello\r\n', '1234567890abc\r\n', '0\r\n trailer\r\n\r\n', '1\r\na\r\n0\r\nx: \x01\r\n\r\n']) {
      assert.equal(new ChunkedScanner().scan(Buffer.from(text), 0), -2, JSON.stringify(text));
    }
  });
});
