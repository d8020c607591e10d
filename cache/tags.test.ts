import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { databaseTag, dependencyTags, tableTag } from './tags.js';

test('table and database tags never collide, whatever the names', () => {
  const tags = new Set([
    tableTag('a', 'b', 'c'),
    tableTag('a', 'b.c', ''),
    tableTag('a.b', 'c', ''),
    tableTag('', '', ''),
    databaseTag('a'),
    databaseTag('a.b.c'),
    databaseTag(''),
  ]);
  assert.is(tags.size, 7);
});

test('dependencyTags lists each table once plus every database involved, the session one included', () => {
  const users = { database: 'app', schema: 'public', table: 'users' };
  const events = { database: 'logs', schema: 'public', table: 'events' };
  const tags = dependencyTags('reporting', [users, events, users]);
  assert.equal(new Set(tags), new Set([
    databaseTag('reporting'),
    databaseTag('app'),
    tableTag('app', 'public', 'users'),
    databaseTag('logs'),
    tableTag('logs', 'public', 'events'),
  ]));
  assert.is(tags.length, 5);
  assert.equal(dependencyTags('app', []), [databaseTag('app')]);
});

test.run();
