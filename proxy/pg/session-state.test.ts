import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { serialize } from 'pg-protocol';
import { PgSessionState, TxStatus } from './session-state.js';
import { typedMessage as backend } from './test-messages.js';

function fromClient(state: PgSessionState, ...messages: Buffer[]): void {
  for (const m of messages) state.onFrontend(m[0]!, m, 0, m.length, 'client');
}

/** Messages the proxy sends on its own account (a replayed Parse, the probe's Query). */
function fromProxy(state: PgSessionState, ...messages: Buffer[]): void {
  for (const m of messages) state.onFrontend(m[0]!, m, 0, m.length, 'proxy');
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

test('a simple Query destroys the unnamed statement, also one whose ParseComplete arrives after it was sent', () => {
  const s = new PgSessionState();
  fromClient(s, serialize.parse({ text: 'SELECT 1', types: [] }), serialize.sync());
  fromServer(s, backend('1'), backend('Z', 'I'));
  assert.ok(s.unnamed !== null);
  assert.ok(s.client.get('') !== undefined);
  fromClient(s, serialize.parse({ text: 'SELECT 2', types: [] }), serialize.sync(), serialize.query('SELECT 3'));
  assert.is(s.upstreamStatement(''), null, 'the Query will have destroyed it');
  assert.is(s.client.get(''), undefined);
  fromServer(s, backend('1'), backend('Z', 'I'));
  assert.ok(s.unnamed?.startsWith('SELECT 2\0'));
  fromServer(s, backend('C', 'SELECT 1\0'), backend('Z', 'I'));
  assert.is(s.unnamed, null);
  assert.is(s.client.get(''), undefined);
});

test('DISCARD ALL and DEALLOCATE ALL forget every statement on both sides; DEALLOCATE of one name, every one the client holds', () => {
  for (const tag of ['DISCARD ALL', 'DEALLOCATE ALL', 'DEALLOCATE']) {
    const s = new PgSessionState();
    fromClient(s, serialize.parse({ name: 'p', text: 'SELECT 1', types: [] }), serialize.sync());
    fromServer(s, backend('1'), backend('Z', 'I'));
    fromClient(s, serialize.query(tag));
    fromServer(s, backend('C', tag + '\0'), backend('Z', 'I'));
    assert.is(s.client.get('p'), undefined, tag);
    assert.equal([...s.statements.keys()], tag === 'DEALLOCATE' ? ['p'] : [], tag);
  }
});

// What the client believes it holds (the relay answers and replays from it).

const parse = (name: string, text: string): Buffer => serialize.parse({ name, text, types: [] });

test('the client holds a statement from its Parse on, unless the server refuses that Parse', () => {
  const s = new PgSessionState();
  fromClient(s, parse('s1', 'SELECT n FROM missing'), serialize.sync());
  assert.is(s.client.get('s1')?.text, 'SELECT n FROM missing', 'while the Parse is in flight, as the client sees it');
  fromServer(s, backend('E', errorBody), backend('Z', 'I'));
  assert.is(s.client.get('s1'), undefined, 'a refused Parse created nothing');
  assert.is(s.upstreamStatement('s1'), null);
  fromClient(s, parse('s1', 'SELECT 1'), serialize.sync());
  fromServer(s, backend('1'), backend('Z', 'I'));
  assert.is(s.client.get('s1')?.text, 'SELECT 1');
  assert.is(s.upstreamStatement('s1'), s.client.get('s1')!.sig);
});

test('a second Parse of a held name fails (42P05): the client keeps the first text', () => {
  const s = new PgSessionState();
  fromClient(s, parse('s1', 'SELECT 1'), parse('s1', 'SELECT 2'), serialize.sync());
  assert.is(s.client.get('s1')?.text, 'SELECT 2', 'in flight');
  fromServer(s, backend('1'), backend('E', errorBody), backend('Z', 'I'));
  assert.is(s.client.get('s1')?.text, 'SELECT 1');
  assert.ok(s.statements.get('s1')?.startsWith('SELECT 1\0'));
});

test('pipelined batches: a refused Parse, then the same name with a new text that succeeds', () => {
  const s = new PgSessionState();
  fromClient(s, parse('s1', 'SELECT n FROM missing'), serialize.sync(), parse('s1', 'SELECT 2'), serialize.sync());
  assert.is(s.client.get('s1')?.text, 'SELECT 2');
  assert.ok(s.upstreamStatement('s1')?.startsWith('SELECT 2\0'));
  fromServer(s, backend('E', errorBody), backend('Z', 'I'));
  assert.is(s.client.get('s1')?.text, 'SELECT 2', 'the later Parse is still in flight');
  fromServer(s, backend('1'), backend('Z', 'I'));
  assert.is(s.client.get('s1')?.text, 'SELECT 2');
});

test('a Parse skipped after an error earlier in its batch creates nothing; one of the next batch does', () => {
  const s = new PgSessionState();
  fromClient(s, serialize.bind({ statement: 'nowhere' }), parse('skipped', 'SELECT 1'), serialize.sync(), parse('next', 'SELECT 2'), serialize.sync());
  fromServer(s, backend('E', errorBody), backend('Z', 'I'), backend('1'), backend('Z', 'I'));
  assert.is(s.client.get('skipped'), undefined);
  assert.is(s.client.get('next')?.text, 'SELECT 2');
  assert.equal([...s.statements.keys()], ['next']);
});

test('a Close the server carried out drops the statement; one skipped after an error leaves it', () => {
  const s = new PgSessionState();
  fromClient(s, parse('a', 'SELECT 1'), parse('b', 'SELECT 2'), serialize.sync());
  fromServer(s, backend('1'), backend('1'), backend('Z', 'I'));
  fromClient(s, serialize.close({ type: 'S', name: 'a' }), serialize.sync(),
    serialize.bind({ statement: 'nowhere' }), serialize.close({ type: 'S', name: 'b' }), serialize.sync());
  assert.is(s.client.get('a'), undefined, 'in flight');
  assert.is(s.client.get('b'), undefined, 'in flight');
  fromServer(s, backend('3'), backend('Z', 'I'), backend('E', errorBody), backend('Z', 'I'));
  assert.is(s.client.get('a'), undefined);
  assert.is(s.client.get('b')?.text, 'SELECT 2');
  assert.equal([...s.statements.keys()], ['b']);
});

test('a failing Parse of the unnamed statement leaves neither side holding one', () => {
  const s = new PgSessionState();
  fromClient(s, parse('', 'SELECT 1'), serialize.sync());
  fromServer(s, backend('1'), backend('Z', 'I'));
  fromClient(s, parse('', 'SELEC 2'), serialize.sync());
  fromServer(s, backend('E', errorBody), backend('Z', 'I'));
  assert.is(s.client.get(''), undefined);
  assert.is(s.unnamed, null);
});

test('a Parse the cache answered: the client holds it, the server does not until the proxy replays it', () => {
  const s = new PgSessionState();
  s.answeredParse('s1', { text: 'SELECT 1', sig: 'SELECT 1\0\0\0' });
  assert.is(s.client.get('s1')?.text, 'SELECT 1');
  assert.is(s.upstreamStatement('s1'), null);
  // A replay the server refuses (the table went away): the client still holds its statement.
  fromProxy(s, parse('s1', 'SELECT 1'), serialize.sync());
  assert.is(s.upstreamStatement('s1'), 'SELECT 1\0\0\0', 'in flight');
  fromServer(s, backend('E', errorBody), backend('Z', 'I'));
  assert.is(s.upstreamStatement('s1'), null);
  assert.is(s.client.get('s1')?.text, 'SELECT 1');
  fromProxy(s, parse('s1', 'SELECT 1'), serialize.sync());
  fromServer(s, backend('1'), backend('Z', 'I'));
  assert.is(s.upstreamStatement('s1'), 'SELECT 1\0\0\0');
});

test('a replayed Parse in an earlier request is not sure (an error there skips it); the client\'s own, or one in the request being sent, is', () => {
  const s = new PgSessionState();
  s.answeredParse('s1', { text: 'SELECT 1', sig: 'SELECT 1\0\0\0' });
  assert.ok(s.upstreamSure('s1'), 'nothing sent: the server\'s acknowledged state');
  fromProxy(s, parse('s1', 'SELECT 1'));
  assert.ok(s.upstreamSure('s1'), 'in the request being sent');
  fromClient(s, serialize.sync());
  assert.is(s.upstreamStatement('s1'), 'SELECT 1\0\0\0');
  assert.not.ok(s.upstreamSure('s1'), 'the proxy\'s own, before a Sync');
  fromClient(s, parse('s2', 'SELECT 2'), serialize.sync());
  assert.ok(s.upstreamSure('s2'), 'the client\'s own, before a Sync');
  fromServer(s, backend('1'), backend('Z', 'I'));
  assert.ok(s.upstreamSure('s1'), 'acknowledged');
});

test('the proxy\'s own Query destroys the server\'s unnamed statement, not the client\'s; an answered Query, the client\'s', () => {
  const s = new PgSessionState();
  fromClient(s, parse('', 'SELECT 1'), serialize.sync());
  fromServer(s, backend('1'), backend('Z', 'I'));
  fromProxy(s, serialize.query('SELECT probe'));
  fromServer(s, backend('C', 'SELECT 1\0'), backend('Z', 'I'));
  assert.is(s.unnamed, null);
  assert.is(s.client.get('')?.text, 'SELECT 1');
  s.answeredQuery();
  assert.is(s.client.get(''), undefined);
});

test('a Parse the cache answered behind outstanding requests: the client holds it from its place in their order', () => {
  const s = new PgSessionState();
  // A relayed batch parses the unnamed statement as A; the cache answers the next one, which parses it as B.
  fromClient(s, parse('', 'SELECT a'), serialize.sync());
  s.answeredParse('', { text: 'SELECT b', sig: 'SELECT b\0\0\0' });
  assert.is(s.client.get('')?.text, 'SELECT b', 'later than the relayed Parse');
  assert.is(s.upstreamStatement(''), 'SELECT a\0\0\0', 'the server gets only the relayed one');
  fromServer(s, backend('1'), backend('Z', 'I'));
  assert.is(s.client.get('')?.text, 'SELECT b', 'the relayed Parse\'s reply does not undo it');
  assert.is(s.unnamed, 'SELECT a\0\0\0');
  // An answered Query behind an outstanding batch: the client's unnamed statement is gone after it.
  fromClient(s, parse('', 'SELECT c'), serialize.sync());
  s.answeredQuery();
  assert.is(s.client.get(''), undefined);
  fromServer(s, backend('E', errorBody), backend('Z', 'I'));
  assert.is(s.client.get(''), undefined);
  assert.is(s.upstreamStatement(''), null);
});

test.run();
