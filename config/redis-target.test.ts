import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseRedisCluster, parseRedisUrl, RedisTargetError } from './redis-target.js';

test('a single node: user, password, host, port, database and TLS with its CA', () => {
  assert.equal(parseRedisUrl('redis://127.0.0.1:6380/2'), {
    tls: false, caFile: null, username: null, password: null, nodes: [{ host: '127.0.0.1', port: 6380 }], db: 2, display: 'redis://127.0.0.1:6380/2',
  });
  const t = parseRedisUrl('rediss://app:s%40cret@cache.internal/?ca=/etc/ca.pem');
  assert.equal([t.tls, t.caFile, t.username, t.password, t.nodes, t.db], [true, '/etc/ca.pem', 'app', 's@cret', [{ host: 'cache.internal', port: 6379 }], 0]);
  assert.is(t.display, 'rediss://app@cache.internal/?ca=/etc/ca.pem', 'the password is cut from what logs show');
  // An AUTH token without an ACL user, as ElastiCache hands it out.
  const token = parseRedisUrl('rediss://:tok3n@[::1]:6390');
  assert.equal([token.username, token.password, token.nodes], [null, 'tok3n', [{ host: '::1', port: 6390 }]]);
  assert.is(token.display, 'rediss://[::1]:6390');
});

test('a cluster: bare seed nodes, or a URL naming several with its credentials and CA', () => {
  assert.equal(parseRedisCluster('10.0.0.1:7000,10.0.0.2:7001, 10.0.0.3').nodes.length, 3);
  const bare = parseRedisCluster('127.0.0.1:7000,127.0.0.1:7001');
  assert.equal([bare.tls, bare.password, bare.nodes], [false, null, [{ host: '127.0.0.1', port: 7000 }, { host: '127.0.0.1', port: 7001 }]]);
  const t = parseRedisCluster('rediss://u:p@a:1,b:2?ca=ca.pem');
  assert.equal([t.tls, t.username, t.password, t.caFile, t.nodes.map((n) => n.host)], [true, 'u', 'p', 'ca.pem', ['a', 'b']]);
});

test('errors say what is wrong and never repeat the password', () => {
  const cases: [() => unknown, RegExp][] = [
    [() => parseRedisUrl('http://u:hunter2@host'), /expected redis:\/\//],
    [() => parseRedisUrl('redis://u:hunter2@a:1,b:2'), /name one host in redis:\/\/u@a:1,b:2 \(use --redis-cluster/],
    [() => parseRedisUrl('redis://u:hunter2@host:70000'), /port 70000 is out of range/],
    [() => parseRedisUrl('redis://u:hunter2@host/zero'), /must be a number/],
    [() => parseRedisUrl('redis://u:hunter2@host?ca=x.pem'), /\?ca= needs TLS: use rediss:\/\//],
    [() => parseRedisUrl('rediss://u:hunter2@host?tls=1'), /unknown parameter "tls"/],
    [() => parseRedisUrl('rediss://u:hunter2@host?ca='), /\?ca= needs a file/],
    [() => parseRedisUrl('redis://u:hunter2%zz@host'), /not valid percent-encoding/],
    [() => parseRedisUrl('redis://u:hunter2@'), /is not HOST or HOST:PORT/],
    [() => parseRedisCluster('redis://u:hunter2@a:1,b:2/3'), /database 0 only/],
  ];
  for (const [parse, pattern] of cases) {
    try {
      parse();
      assert.unreachable(String(pattern));
    } catch (err) {
      assert.instance(err, RedisTargetError);
      assert.match((err as Error).message, pattern);
      assert.not.match((err as Error).message, /hunter2/);
    }
  }
});

test.run();
