import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { serialize } from 'pg-protocol';
import { PgSessionState, TxStatus } from './session-state.js';
import { typedMessage as backend } from './test-messages.js';

function fromClient(state: PgSessionState, ...messages: Buffer[]): void {
  for (const m of messages) state.onFrontend(m[0]!, m, 0, m.length);
}

function fromServer(state: PgSessionState, ...messages: Buffer[]): void {
  for (const m of messages) state.onBackend(m[0]!, m, 5, m.length);
}

const errorBody = 'SERROR\0C42601\0Msyntax error\0\0';

test('transaction status and parameters come from the server', () => {
  const s = new PgSessionState();
  fromServer(s, backend('S', 'TimeZone\0UTC\0'), backend('S', 'search_path\0"$user", public\0'), backend('Z', 'I'));
  assert.is(s.txStatus, TxStatus.Idle);
  assert.ok(s.ready);
  assert.is(s.parameters.get('TimeZone'), 'UTC');
  assert.is(s.parameters.get('search_path'), '"$user", public');
  fromServer(s, backend('Z', 'T'));
  assert.is(s.txStatus, TxStatus.InTransaction);
  fromServer(s, backend('Z', 'E'));
  assert.is(s.txStatus, TxStatus.Failed);
});

test('a ParameterStatus is a change only when it gives a new value (a server may repeat what it reported)', () => {
  const s = new PgSessionState();
  fromServer(s, backend('S', 'TimeZone\0UTC\0'));
  assert.ok(s.parameterChanged, 'first report');
  fromServer(s, backend('S', 'TimeZone\0UTC\0'));
  assert.not.ok(s.parameterChanged, 'the same value again');
  fromServer(s, backend('S', 'TimeZone\0Europe/Paris\0'));
  assert.ok(s.parameterChanged, 'a new value');
  assert.is(s.parameters.get('TimeZone'), 'Europe/Paris');
});

test('backend key data is kept', () => {
  const s = new PgSessionState();
  fromServer(s, backend('K', Buffer.from([0, 0, 0x30, 0x39, 1, 2, 3, 4])));
  assert.is(s.backendKey?.pid, 12345);
  assert.ok(s.backendKey?.secret.equals(Buffer.from([1, 2, 3, 4])));
});

test('a named statement exists once the server acknowledged its Parse, until Close', () => {
  const s = new PgSessionState();
  fromClient(s, serialize.parse({ name: 's1', text: 'SELECT 1', types: [] }), serialize.parse({ text: 'SELECT 2', types: [] }), serialize.sync());
  assert.is(s.awaitingReady, 1);
  assert.equal([...s.statements.keys()], []);
  fromServer(s, backend('1'), backend('1'), backend('Z', 'I'));
  assert.equal([...s.statements.keys()], ['s1']);
  assert.ok(s.unnamed?.startsWith('SELECT 2\0'));
  assert.is(s.awaitingReady, 0);
  fromClient(s, serialize.close({ type: 'P', name: 's1' }), serialize.close({ type: 'S', name: 's1' }), serialize.sync());
  fromServer(s, backend('3'), backend('3'), backend('Z', 'I'));
  assert.equal([...s.statements.keys()], []);
});

test('an error skips the rest of the pipeline: later Parses never create statements', () => {
  const s = new PgSessionState();
  fromClient(
    s,
    serialize.parse({ name: 'good', text: 'SELECT 1', types: [] }),
    serialize.parse({ name: 'bad', text: 'SELEC 1', types: [] }),
    serialize.parse({ name: 'skipped', text: 'SELECT 3', types: [] }),
    serialize.sync(),
    serialize.parse({ name: 'after', text: 'SELECT 4', types: [] }),
    serialize.sync(),
  );
  assert.is(s.awaitingReady, 2);
  fromServer(s, backend('1'), backend('E', errorBody), backend('Z', 'I'), backend('1'), backend('Z', 'I'));
  assert.equal([...s.statements.keys()].sort(), ['after', 'good']);
  assert.is(s.awaitingReady, 0);
});

test('an error in a simple query does not disturb pending pipeline bookkeeping', () => {
  const s = new PgSessionState();
  fromClient(s, serialize.query('SELEC 1'), serialize.parse({ name: 'p', text: 'SELECT 1', types: [] }), serialize.sync());
  fromServer(s, backend('E', errorBody), backend('Z', 'I'), backend('1'), backend('Z', 'I'));
  assert.equal([...s.statements.keys()], ['p']);
});

test('a simple Query destroys the unnamed statement', () => {
  const s = new PgSessionState();
  fromClient(s, serialize.parse({ text: 'SELECT 1', types: [] }), serialize.sync());
  fromServer(s, backend('1'), backend('Z', 'I'));
  assert.ok(s.unnamed !== null);
  fromClient(s, serialize.query('SELECT 2'));
  assert.is(s.unnamed, null);
});

test('DISCARD ALL and DEALLOCATE ALL forget every statement', () => {
  for (const tag of ['DISCARD ALL', 'DEALLOCATE ALL']) {
    const s = new PgSessionState();
    fromClient(s, serialize.parse({ name: 'p', text: 'SELECT 1', types: [] }), serialize.sync());
    fromServer(s, backend('1'), backend('Z', 'I'));
    fromClient(s, serialize.query(tag));
    fromServer(s, backend('C', tag + '\0'), backend('Z', 'I'));
    assert.equal([...s.statements.keys()], [], tag);
  }
});

test.run();
