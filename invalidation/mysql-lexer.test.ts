import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { MysqlLexError, MysqlScanner, serverDialect, Tok, tokenize, type MysqlDialect, type Token } from './mysql-lexer.js';

const views = (text: string, dialect?: MysqlDialect): Token[] => {
  const tokens = tokenize(text, dialect);
  return Array.from({ length: tokens.count }, (_, i) => tokens.at(i));
};

const NAMES: Record<number, string> = {
  [Tok.Word]: 'word', [Tok.QuotedIdent]: 'ident', [Tok.String]: 'string', [Tok.Number]: 'number',
  [Tok.HexNumber]: 'hex', [Tok.UserVariable]: 'uvar', [Tok.SystemVariable]: 'svar', [Tok.Placeholder]: '?',
  [Tok.LParen]: '(', [Tok.RParen]: ')', [Tok.Comma]: ',', [Tok.Semicolon]: ';', [Tok.Dot]: '.', [Tok.Operator]: 'op',
  [Tok.Comment]: 'comment', [Tok.ExecOpen]: 'exec', [Tok.ExecClose]: 'close', [Tok.Error]: 'error', [Tok.End]: 'end',
};

/** Every token (comments included) as "kind:text". */
function scan(text: string, dialect?: MysqlDialect): string[] {
  const s = new MysqlScanner(text, dialect);
  const out: string[] = [];
  for (;;) {
    const type = s.next();
    if (type === Tok.End) return out;
    out.push(`${NAMES[type]}:${text.slice(s.start, s.end)}`);
    if (type === Tok.Error) return out;
  }
}

test('words, numbers and names that start with digits', () => {
  assert.equal(scan('SELECT 12 1.5 .5 1e5 1e+5 1.e3 7. 1abc 1e 0x1F 0b101 0xZZ t1 $x über'), [
    'word:SELECT', 'number:12', 'number:1.5', 'number:.5', 'number:1e5', 'number:1e+5', 'number:1.e3', 'number:7.',
    'word:1abc', 'word:1e', 'hex:0x1F', 'hex:0b101', 'word:0xZZ', 'word:t1', 'word:$x', 'word:über',
  ]);
  assert.equal(scan('t.5 t.1abc `t`.5 (1).5'), ['word:t', '.:.', 'number:5', 'word:t', '.:.', 'word:1abc', 'ident:`t`', '.:.', 'number:5', '(:(', 'number:1', '):)', '.:.', 'number:5']);
});

test('strings: doubled quotes, backslash escapes, prefixes', () => {
  assert.equal(scan("'it''s' 'a\\'b' \"q\\\"\" N'n' X'0F' B'01' n'x' _utf8'u'"), [
    "string:'it''s'", "string:'a\\'b'", 'string:"q\\""', "string:N'n'", "string:X'0F'", "string:B'01'", "string:n'x'", 'word:_utf8', "string:'u'",
  ]);
  assert.equal(scan("'a\\' b'"), ["string:'a\\' b'"]);
  assert.equal(scan("'a\\' c'", { noBackslashEscapes: true }), ["string:'a\\'", 'word:c', "error:'"]);
});

test('quoted identifiers: backticks always, double quotes under ANSI_QUOTES', () => {
  assert.equal(scan('`a``b` `x\\`'), ['ident:`a``b`', 'ident:`x\\`']);
  assert.equal(scan('"t"', { ansiQuotes: true }), ['ident:"t"']);
  assert.equal(views('`a``b`.`c d`').map((t) => t.name), ['a`b', '', 'c d', '']);
  assert.equal(views('"x""y"', { ansiQuotes: true })[0]!.name, 'x"y');
});

test('comments: -- needs a blank or control character, # and /* */ do not nest', () => {
  assert.equal(scan('1 -- c\n2'), ['number:1', 'comment:-- c\n', 'number:2']);
  assert.equal(scan('1--2'), ['number:1', 'op:-', 'op:-', 'number:2']);
  assert.equal(scan('1 --\t2'), ['number:1', 'comment:--\t2']);
  assert.equal(scan('1 --'), ['number:1', 'comment:--']);
  assert.equal(scan('1 # x\n2'), ['number:1', 'comment:# x\n', 'number:2']);
  assert.equal(scan('1 /* a /* b */ 2'), ['number:1', 'comment:/* a /* b */', 'number:2']);
  assert.equal(scan('/*+ BKA(t) */ 1'), ['comment:/*+ BKA(t) */', 'number:1']);
  assert.equal(scan('/* open'), ['error:/* open']);
});

test('executable comments: content is code; without a version a comment or a quoted */ inside is an error', () => {
  assert.equal(scan('/*!40101 SET x=1 */'), ['exec:/*!40101', 'word:SET', 'word:x', 'op:=', 'number:1', 'close:*/']);
  assert.equal(scan('/*M!100100 1*/'), ['exec:/*M!100100', 'number:1', 'close:*/']);
  assert.equal(scan('/*! 1 */'), ['exec:/*!', 'number:1', 'close:*/']);
  assert.equal(scan('/*!1234567 x */'), ['exec:/*!123456', 'number:7', 'word:x', 'close:*/']);
  assert.equal(scan('1 */'), ['number:1', 'op:*', 'op:/']);
  assert.equal(scan('/*!50000 1 -- x */ 2').at(-1), 'error:-- x */ 2');
  assert.equal(scan("/*!50000 '*/' */").at(-1), "error:'*/' */");
  assert.equal(scan('/*!50000 /* x */ 1 */').at(-1), 'error:/* x */ 1 */');
  assert.equal(scan('/*!50000 /*!50000 1 */ */').at(-1), 'error:/*!50000 1 */ */');
});

test('executable comments with the server version: run exactly when the server runs them', () => {
  const maria = { serverVersion: 101119, mariadb: true };
  const mysql8 = { serverVersion: 80036, mariadb: false };
  const runs = (text: string, dialect: MysqlDialect): boolean => scan(text, dialect)[0]!.startsWith('exec');
  assert.ok(runs('/*!50000 1 */', maria));
  assert.ok(!runs('/*!50700 1 */', maria)); // MySQL 5.7+ code
  assert.ok(!runs('/*!80000 1 */', maria));
  assert.ok(runs('/*!100000 1 */', maria));
  assert.ok(runs('/*!101119 1 */', maria));
  assert.ok(!runs('/*!101120 1 */', maria));
  assert.ok(runs('/*M!100000 1 */', maria));
  assert.ok(!runs('/*M!100000 1 */', mysql8));
  assert.ok(runs('/*!80000 1 */', mysql8));
  assert.ok(!runs('/*!80037 1 */', mysql8));
  assert.ok(runs('/*! 1 */', mysql8));
  // a comment that does not run ends at the first */, even inside quotes
  assert.equal(scan("/*!99999 '*/' 1", maria), ["comment:/*!99999 '*/", "error:' 1"]);
  // one that runs is lexed like code: its comments and quoted */ do not end it
  assert.equal(scan("/*!50000 '*/' /* c */ -- d\n 1 */", maria), ['exec:/*!50000', "string:'*/'", 'comment:/* c */', 'comment:-- d\n', 'number:1', 'close:*/']);
});

test('variables, placeholders and operators', () => {
  assert.equal(scan("@x @'a b' @`c` @\"d\" @a.b @@v @@session.sql_mode @@GLOBAL.x ? @ @@"), [
    'uvar:@x', "uvar:@'a b'", 'uvar:@`c`', 'uvar:@"d"', 'uvar:@a.b', 'svar:@@v', 'svar:@@session.sql_mode', 'svar:@@GLOBAL.x', '?:?', 'op:@', 'op:@@',
  ]);
  assert.equal(scan('a:=1 b<=>c d<=e f->\'$\' g->>\'$\' h!=i j<>k l&&m n||o p<<q r>>s {t}'), [
    'word:a', 'op::=', 'number:1', 'word:b', 'op:<=>', 'word:c', 'word:d', 'op:<=', 'word:e', 'word:f', 'op:->', "string:'$'",
    'word:g', 'op:->>', "string:'$'", 'word:h', 'op:!=', 'word:i', 'word:j', 'op:<>', 'word:k', 'word:l', 'op:&&', 'word:m',
    'word:n', 'op:||', 'word:o', 'word:p', 'op:<<', 'word:q', 'word:r', 'op:>>', 'word:s', 'op:{', 'word:t', 'op:}',
  ]);
});

test('tokenize drops comments, opens executable comments and ends with one End token', () => {
  const tokens = views('SELECT /* x */ a /*!50000 , b */ FROM t -- y');
  assert.equal(tokens.map((t) => t.upper || NAMES[t.type]), ['SELECT', 'A', ',', 'B', 'FROM', 'T', 'end']);
  // storage grows past its first 64 tokens
  const many = tokenize(`SELECT ${Array.from({ length: 500 }, (_, i) => `c${i}`).join(', ')} FROM t`);
  assert.is(many.count, 1 + 999 + 2 + 1);
  assert.is(many.name(999), 'c499');
  assert.is(many.type(many.count - 1), Tok.End);
  assert.throws(() => tokenize("SELECT 'open"), (err: unknown) => err instanceof MysqlLexError && err.code === 'MYSQL_LEX_ERROR');
});

test('serverDialect reads handshake version strings', () => {
  assert.equal(serverDialect('8.0.36'), { serverVersion: 80036, mariadb: false });
  assert.equal(serverDialect('5.5.5-10.11.19-MariaDB-0+deb12u1'), { serverVersion: 101119, mariadb: true });
  assert.equal(serverDialect('11.4.2-MariaDB-log'), { serverVersion: 110402, mariadb: true });
  assert.equal(serverDialect('whatever'), { mariadb: false });
});

test('property: the scanner always advances and ends', () => {
  const piece = fc.constantFrom("'", '"', '`', '\\', '-', '--', '-- ', '#', '/*', '*/', '/*!', '/*M!1', '@', '@@', '.', '1', 'e', 'x', ' ', '\n', '?', ':', '=');
  fc.assert(fc.property(fc.array(piece, { maxLength: 40 }), fc.boolean(), fc.boolean(), fc.option(fc.constant(101119)), (parts, nbe, ansi, version) => {
    const text = parts.join('');
    const s = new MysqlScanner(text, { noBackslashEscapes: nbe, ansiQuotes: ansi, serverVersion: version ?? undefined, mariadb: true });
    let last = -1;
    for (let i = 0; i <= text.length + 1; i++) {
      const type = s.next();
      if (type === Tok.End || type === Tok.Error) return s.end === text.length;
      if (s.end <= last || s.end > text.length) return false;
      last = s.end;
    }
    return false;
  }), { numRuns: 5000 });
});

test.run();
