// The scenario both protocols' login-defaults tests run (e2e/*-cache-login-defaults.test.ts): new
// sessions adopt an earlier session's context at login, the login's defaults change behind the
// proxy, and the next new session must get what the server now answers, then hit again.
import * as assert from 'uvu/assert';

export interface LoginDefaultsScenario {
  /** A read on a new connection through sidecache, with the cache counters it moved. */
  throughProxy(): Promise<{ result: string; hits: number }>;
  /** The same read on a new connection to the server. */
  direct(): Promise<string>;
  /** Changes the login's defaults on the server (ALTER ROLE ... SET, SET GLOBAL). */
  change(): Promise<void>;
  before: string;
  after: string;
}

export async function loginDefaultsChange(s: LoginDefaultsScenario): Promise<void> {
  for (let i = 0; i < 3; i++) assert.is((await s.throughProxy()).result, s.before);
  // The later sessions adopted the first one's context: their reads were hits.
  assert.is((await s.throughProxy()).hits, 1, 'a new session adopting the remembered context hits');
  await s.change();
  assert.is(await s.direct(), s.after, 'directly');
  const changed = await s.throughProxy();
  assert.is(changed.result, s.after, 'through sidecache, the first session after the change');
  assert.is(changed.hits, 0);
  // That session's context is the login's new one: later sessions adopt it and hit.
  const later = await s.throughProxy();
  assert.is(later.result, s.after);
  assert.is(later.hits, 1, 'a later session adopts the new context and hits');
}
