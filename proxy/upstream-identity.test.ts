// What tells one server from another: PostgreSQL's system identifier and start to the
// microsecond, MySQL's server id, host name, port and start to the second; readings that are not what the queries
// return are refused, never taken for another server.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { IdentityError, UpstreamIdentity, identityOf, readMysqlIdentity, readPgIdentity, sameServer } from './upstream-identity.js';

const PG_ROW = ['7716450249936869498', '2026-12-07 06:47:59.461913'];
const MARIADB_ROW = ['1', '766D', '3306', '1796626544', '422'];

test('PostgreSQL: the system identifier and the start to the microsecond', () => {
  const id = readPgIdentity(PG_ROW);
  assert.is(id.server, '7716450249936869498');
  assert.is(id.startedAtMs, Date.UTC(2026, 11, 7, 6, 47, 59) + 461.913);
  assert.ok(sameServer(id, readPgIdentity([...PG_ROW])));
  assert.not.ok(sameServer(id, readPgIdentity([PG_ROW[0]!, '2026-12-07 06:47:59.461914'])), 'a restart a microsecond later');
  assert.not.ok(sameServer(id, readPgIdentity(['7716450249936869499', PG_ROW[1]!])), 'another cluster started at the same time');
});

test('PostgreSQL: a reply that is not the identity is refused', () => {
  for (const row of [[], [PG_ROW[0]!], [null, PG_ROW[1]!], [PG_ROW[0]!, null], ['-1', PG_ROW[1]!], [PG_ROW[0]!, '2026-12-07 06:47:59+00'],
    [PG_ROW[0]!, 'Mon Dec 07 06:47:59.461913 2026'], [...PG_ROW, 'x']]) {
    assert.throws(() => readPgIdentity(row), (err: Error) => err instanceof IdentityError, JSON.stringify(row));
  }
});

test('MySQL: server id, host name and port, and the start as clock minus uptime', () => {
  const id = readMysqlIdentity(MARIADB_ROW);
  assert.is(id.server, '1 766D 3306');
  assert.is(id.startedAtMs, (1796626544 - 422) * 1000);
  // Read a minute later: the uptime grew with the clock (both are the statement's start time).
  assert.ok(sameServer(id, readMysqlIdentity(['1', '766D', '3306', '1796626604', '482'])));
  assert.not.ok(sameServer(id, readMysqlIdentity(['1', '766D', '3306', '1796626604', '481'])), 'started a second later');
  assert.not.ok(sameServer(id, readMysqlIdentity(['1', '766D', '3306', '1796626604', '30'])), 'restarted');
  assert.not.ok(sameServer(id, readMysqlIdentity(['2', '766D', '3306', '1796626544', '422'])), 'another server id');
  assert.not.ok(sameServer(id, readMysqlIdentity(['1', '766E', '3306', '1796626544', '422'])), 'another host');
  assert.not.ok(sameServer(id, readMysqlIdentity(['1', '766D', '3307', '1796626544', '422'])), 'another port');
  assert.is(readMysqlIdentity(['3e0c6a9e-d2b4-11ee-8a6b-0242ac110002', '766D', '3306', '1796626544', '422']).server,
    '3e0c6a9e-d2b4-11ee-8a6b-0242ac110002 766D 3306', 'MySQL\'s server_uuid');
});

test('MySQL: a reply that is not the identity is refused', () => {
  const bad = [
    [], MARIADB_ROW.slice(0, 4), [...MARIADB_ROW, '1'],
    [null, '766D', '3306', '1796626544', '422'], ['1', 'vm', '3306', '1796626544', '422'], ['1', '766D', null, '1796626544', '422'],
    ['1', '766D', '3306', null, '422'], ['1', '766D', '3306', '1796626544', null],
    // SET TIMESTAMP before the server started: MariaDB shows the negative uptime as 2^64 minus it.
    ['1', '766D', '3306', '1000000', '18446744071912925000'],
    // A character set that is not ASCII-compatible (utf16 results) garbles every value.
    ['\u00001', '766D', '3306', '1796626544', '422'],
  ];
  for (const row of bad) assert.throws(() => readMysqlIdentity(row), (err: Error) => err instanceof IdentityError, JSON.stringify(row));
});

test('a check\'s reply: an error, no row or another row is why there is no identity', () => {
  assert.equal(identityOf(false, PG_ROW, readPgIdentity), readPgIdentity(PG_ROW));
  const why = (errored: boolean, row: (string | null)[] | null): string => {
    const r = identityOf(errored, row, readPgIdentity);
    assert.instance(r, IdentityError);
    return (r as IdentityError).message;
  };
  assert.is(why(true, null), 'the query failed');
  assert.is(why(true, PG_ROW), 'the query failed', 'an error reply whatever came before it');
  assert.is(why(false, null), 'no row');
  assert.match(why(false, ['x', PG_ROW[1]!]), /system identifier/);
  assert.throws(() => identityOf(false, PG_ROW, () => { throw new TypeError('a bug'); }), TypeError, 'anything else is not swallowed');
});

test('the first reading makes a server known; another server changes the epoch and says so', () => {
  const identity = new UpstreamIdentity();
  const first = readPgIdentity(PG_ROW);
  assert.is(identity.epoch, 0);
  assert.is(identity.observe(first), false, 'nothing was filled from another server');
  const known = identity.epoch;
  assert.is(identity.observe(readPgIdentity([...PG_ROW])), false);
  assert.is(identity.epoch, known, 'the same server keeps the epoch');
  const restarted = readPgIdentity([PG_ROW[0]!, '2026-12-07 07:00:00.000001']);
  assert.is(identity.observe(restarted), true);
  assert.is(identity.epoch, known + 1);
  assert.is(identity.observe(restarted), false, 'the new server is the known one now');
  assert.is(identity.observe(first), true, 'going back to the first server is a change again');
  assert.is(identity.epoch, known + 2);
});

test.run();
