import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { crossSiteRefusal, declaresJson, hostAllowed, hostName, hostPolicy, isSafeMethod } from './browser-guard.js';

test('hostName: the name without port, brackets or trailing dot; null when malformed', () => {
  assert.is(hostName('Example.COM:9180'), 'example.com');
  assert.is(hostName('localhost.'), 'localhost');
  assert.is(hostName('127.0.0.1:9180'), '127.0.0.1');
  assert.is(hostName('[::1]:9180'), '::1');
  assert.is(hostName('[::1]'), '::1');
  for (const bad of ['', ':9180', 'a:b:c', 'evil.example/x', 'user@evil.example', 'a b', '[::1', 'host:99999999']) {
    assert.is(hostName(bad), null, bad);
  }
});

test('hostPolicy: the listen host by default, any name on a wildcard listener, the list when set', () => {
  const loopback = hostPolicy('127.0.0.1', null);
  for (const host of ['127.0.0.1:9180', 'localhost:9180', '[::1]:9180', '10.1.2.3:9180', 'LOCALHOST']) assert.ok(hostAllowed(host, loopback), host);
  for (const host of ['rebound.example:9180', 'localhost.example', 'sidecache.internal']) assert.not.ok(hostAllowed(host, loopback), host);
  assert.not.ok(hostAllowed('evil.example/x', loopback), 'a malformed Host is refused');
  assert.ok(hostAllowed(undefined, loopback), 'HTTP/1.0 without Host is not a browser');

  assert.ok(hostAllowed('sidecache.internal:9180', hostPolicy('sidecache.internal', null)));
  for (const wildcard of ['0.0.0.0', '::']) assert.ok(hostAllowed('anything.example:9180', hostPolicy(wildcard, null)), wildcard);

  const listed = hostPolicy('0.0.0.0', ['sidecache.internal', 'admin.example']);
  for (const host of ['sidecache.internal:9180', 'Admin.Example', 'localhost:9180', '10.1.2.3:9180']) assert.ok(hostAllowed(host, listed), host);
  assert.not.ok(hostAllowed('rebound.example:9180', listed), 'the list replaces "any name" on a wildcard listener');
});

test('crossSiteRefusal: another site or origin is refused; the same origin and non-browsers pass', () => {
  const host = '127.0.0.1:9180';
  assert.is(crossSiteRefusal({ host }), null, 'curl sends neither header');
  assert.is(crossSiteRefusal({ host, origin: 'http://127.0.0.1:9180', 'sec-fetch-site': 'same-origin' }), null);
  assert.is(crossSiteRefusal({ host: 'localhost', origin: 'http://localhost:80' }), null, 'the default port is the same origin');
  assert.is(crossSiteRefusal({ host, 'sec-fetch-site': 'none' }), null, 'typed by the user');
  for (const [headers, why] of [
    [{ host, 'sec-fetch-site': 'cross-site' }, 'Sec-Fetch-Site is cross-site'],
    [{ host, 'sec-fetch-site': 'same-site', origin: 'http://127.0.0.1:3000' }, 'Sec-Fetch-Site is same-site'],
    [{ host, origin: 'http://evil.example' }, 'Origin http://evil.example'],
    [{ host, origin: 'http://127.0.0.1:3000' }, 'Origin http://127.0.0.1:3000'],
    [{ host, origin: 'null' }, 'Origin null'],
    [{ origin: 'http://127.0.0.1:9180' }, 'Origin'],
    [{ host: 'bad host', origin: 'http://bad host' }, 'Origin'],
  ] as const) {
    assert.match(crossSiteRefusal(headers) ?? '', why, JSON.stringify(headers));
  }
});

test('declaresJson: application/json with or without parameters, nothing else', () => {
  assert.ok(declaresJson('application/json'));
  assert.ok(declaresJson('Application/JSON; charset=utf-8'));
  for (const type of [undefined, '', 'text/plain', 'text/plain;charset=UTF-8', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/jsonx']) {
    assert.not.ok(declaresJson(type), String(type));
  }
});

test('isSafeMethod: GET, HEAD and OPTIONS only', () => {
  assert.equal(['GET', 'HEAD', 'OPTIONS', 'POST', 'PUT', 'DELETE', 'PATCH', undefined].map(isSafeMethod), [true, true, true, false, false, false, false, false]);
});

test.run();
