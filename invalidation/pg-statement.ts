// Analysis of one parsed PostgreSQL statement: walks the raw parse tree (libpg-query's JSON) and
// collects the tables read and written, the functions called and what forbids caching.
//
// The tree is walked generically, so a relation in a place nobody listed (a subquery in a new
// clause, a lateral function argument) is still found; only the nodes that change meaning get a
// handler. In the JSON, a field typed as one node kind holds the bare struct ({relname: ...}),
// a field typed as any node holds a wrapper ({RangeVar: {...}}): both are recognised.

import type {
  CallStmt, CommonTableExpr, CopyStmt, DefElem, DropStmt, ExplainStmt, FuncCall, Node, RangeVar,
  SelectStmt, TransactionStmt, TypeCast, VariableSetStmt, WithClause,
} from 'libpg-query';
import type {
  NotCacheableReason, QualifiedName, SessionChange, StatementKind, StatementPart, TransactionAction,
  ValueFunctionUse,
} from './pg-analysis.js';
import { builtinHazard, CATALOG_TYPES, isSystemRelation, SQL_VALUE_FUNCTIONS, TIME_LITERALS } from './pg-builtins.js';

/** Where a relation name met during the walk goes: read, or written (DML targets, DDL objects). */
type RelationRole = 'read' | 'write';

interface Scope {
  /** Names of the CTEs visible here; an unqualified relation of that name is the CTE, not a table. */
  readonly ctes: readonly string[];
  readonly role: RelationRole;
}

const READ: Scope = { ctes: [], role: 'read' };
const WRITE: Scope = { ctes: [], role: 'write' };

type Struct = Record<string, unknown>;
type ModifyStmt = { relation?: RangeVar; withClause?: WithClause } & Struct;

/** An insertion-ordered set of names without duplicates. */
export class NameSet {
  readonly #names = new Map<string, QualifiedName>();

  add(schema: string | null, name: string): void {
    // NUL cannot occur in an identifier, so the key is unambiguous even for names containing dots
    const key = (schema ?? '') + '\0' + name;
    if (!this.#names.has(key)) this.#names.set(key, Object.freeze({ schema, name }));
  }

  list(): QualifiedName[] {
    return [...this.#names.values()];
  }
}

const DML_NODES: ReadonlySet<string> = new Set(['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt']);

/**
 * Statements that neither read for the client nor write through a table name. (REINDEX is not one:
 * REINDEX CONCURRENTLY gives an index a new oid, so it is DDL.)
 */
const OTHER_NODES: ReadonlySet<string> = new Set([
  'ListenStmt', 'UnlistenStmt', 'NotifyStmt', 'FetchStmt', 'ClosePortalStmt', 'PrepareStmt',
  'DeallocateStmt', 'LockStmt', 'VariableShowStmt', 'VacuumStmt',
  'CheckPointStmt', 'LoadStmt',
]);

/** 'other' statements that run code the text does not show. */
const OPAQUE_NODES: ReadonlySet<string> = new Set(['CallStmt', 'DoStmt', 'ExecuteStmt']);

/** DDL whose effect every database of the server sees: roles and memberships, server settings, databases, tablespaces. */
const SERVER_NODES: ReadonlySet<string> = new Set([
  'CreateRoleStmt', 'AlterRoleStmt', 'AlterRoleSetStmt', 'DropRoleStmt', 'GrantRoleStmt', 'ReassignOwnedStmt',
  'DropOwnedStmt', 'AlterSystemStmt', 'CreatedbStmt', 'DropdbStmt', 'AlterDatabaseStmt', 'AlterDatabaseSetStmt',
  'AlterDatabaseRefreshCollStmt', 'CreateTableSpaceStmt', 'DropTableSpaceStmt', 'AlterTableSpaceOptionsStmt',
]);

/** Objects of the server rather than of one database: GRANT, RENAME and OWNER TO on them reach every database. */
const SERVER_OBJECTS: ReadonlySet<string> = new Set(['OBJECT_ROLE', 'OBJECT_DATABASE', 'OBJECT_TABLESPACE', 'OBJECT_PARAMETER_ACL']);

/** Tables a DROP names, for the object types that hold rows. */
const DROPPED_RELATIONS: ReadonlySet<string> = new Set([
  'OBJECT_TABLE', 'OBJECT_VIEW', 'OBJECT_MATVIEW', 'OBJECT_FOREIGN_TABLE',
]);

class StatementWalker {
  readonly read = new NameSet();
  readonly written = new NameSet();
  readonly functions = new NameSet();
  readonly valueFunctions = new Map<string, ValueFunctionUse>();
  readonly sessionChanges: SessionChange[] = [];
  /** The first thing met in the tree that forbids caching. */
  hazard: { reason: NotCacheableReason; detail: string } | null = null;
  dataModifyingCte = false;
  selectInto = false;

  visit(value: unknown, scope: Scope): void {
    if (Array.isArray(value)) {
      for (const item of value) this.visit(item, scope);
      return;
    }
    if (value === null || typeof value !== 'object') return;
    const struct = value as Struct;
    const type = wrapperType(struct);
    if (type === null) {
      if (typeof struct.relname === 'string') this.relation(struct as RangeVar, scope);
      else this.fields(struct, scope);
      return;
    }
    const node = struct[type] as Struct;
    switch (type) {
      case 'SelectStmt': return this.select(node as SelectStmt, scope);
      case 'InsertStmt': case 'UpdateStmt': case 'DeleteStmt': case 'MergeStmt':
        return this.modify(node as ModifyStmt, scope);
      case 'RangeVar': return this.relation(node as RangeVar, scope);
      case 'FuncCall': return this.funcCall(node as FuncCall, scope);
      case 'TypeCast': return this.typeCast(node as TypeCast, scope);
      case 'SQLValueFunction': return this.valueFunction(String(node.op));
      case 'A_Const': return this.constant(node);
      case 'ColumnRef': return; // column names only
      case 'RangeTableSample':
        if (node.repeatable === undefined) this.hazardFound('tablesample', 'TABLESAMPLE without REPEATABLE');
        return this.fields(node, scope);
      default: return this.fields(node, scope);
    }
  }

  select(stmt: SelectStmt, outer: Scope): void {
    const scope = this.withClause(stmt.withClause, outer);
    if (stmt.intoClause?.rel) {
      this.selectInto = true;
      this.relation(stmt.intoClause.rel, WRITE);
    }
    const locking = stmt.lockingClause?.[0] as { LockingClause?: { strength?: string } } | undefined;
    if (locking) this.hazardFound('locking-clause', lockingText(locking.LockingClause?.strength));
    // set operations hold their branches as bare SelectStmt structs
    if (stmt.larg) this.select(stmt.larg, scope);
    if (stmt.rarg) this.select(stmt.rarg, scope);
    // lockingClause is skipped: FOR UPDATE OF t names a range-table entry, not a table to read
    this.fields(stmt as Struct, scope, ['withClause', 'intoClause', 'lockingClause', 'larg', 'rarg']);
  }

  /** INSERT/UPDATE/DELETE/MERGE: the target is written (never a CTE), everything else is read. */
  modify(stmt: ModifyStmt, outer: Scope): void {
    const scope = this.withClause(stmt.withClause, outer);
    if (stmt.relation) this.relation(stmt.relation, WRITE);
    this.fields(stmt, scope, ['withClause', 'relation']);
  }

  /**
   * Visits the CTE bodies and returns the scope of the statement they belong to. Without RECURSIVE
   * a CTE sees only the CTEs before it, so `WITH t AS (SELECT * FROM t)` reads the table t.
   */
  withClause(clause: WithClause | undefined, outer: Scope): Scope {
    const inner: Scope = { ctes: outer.ctes, role: 'read' };
    if (!clause?.ctes) return inner;
    const ctes = clause.ctes.map((node) => (node as { CommonTableExpr: CommonTableExpr }).CommonTableExpr);
    const names = ctes.map((cte) => cte.ctename ?? '');
    ctes.forEach((cte, i) => {
      const visible = clause.recursive ? names : names.slice(0, i);
      const query = cte.ctequery as Struct | undefined;
      if (query && DML_NODES.has(wrapperType(query) ?? '')) this.dataModifyingCte = true;
      this.visit(query, { ctes: [...outer.ctes, ...visible], role: 'read' });
    });
    return { ctes: [...outer.ctes, ...names], role: 'read' };
  }

  relation(rv: RangeVar, scope: Scope): void {
    const name = rv.relname ?? '';
    const schema = rv.schemaname ?? null;
    if (scope.role === 'write') {
      this.written.add(schema, name);
      return;
    }
    if (schema === null && scope.ctes.includes(name)) return;
    this.read.add(schema, name);
    if (isSystemRelation(schema, name)) this.hazardFound('system-catalog', schema ? `${schema}.${name}` : name);
  }

  funcCall(call: FuncCall, scope: Scope): void {
    const parts = (call.funcname ?? []).map(stringValue);
    const name = parts[parts.length - 1] ?? '';
    const schema = parts.length > 1 ? parts[parts.length - 2]! : null;
    this.functions.add(schema, name);
    const args = call.args ?? [];
    if (schema === null || schema === 'pg_catalog') {
      const hazard = builtinHazard(name, args.length);
      if (hazard) this.hazardFound(hazard, `${name}()`);
      if (name === 'set_config') {
        this.sessionChanges.push(Object.freeze({
          action: 'set', setting: constantText(args[0])?.toLowerCase() ?? null, local: constantText(args[2]) === 'true',
        }));
      }
    }
    this.fields(call as Struct, scope, ['funcname']);
  }

  /** 'x'::regclass and CAST('x' AS regclass) look x up in the catalog (CATALOG_TYPES). */
  typeCast(cast: TypeCast, scope: Scope): void {
    const names = cast.typeName?.names ?? [];
    const type = names.length > 0 ? stringValue(names[names.length - 1]!) : '';
    if (CATALOG_TYPES.has(type)) this.hazardFound('system-catalog', `::${type}`);
    this.fields(cast as Struct, scope);
  }

  valueFunction(op: string): void {
    const use = SQL_VALUE_FUNCTIONS[op];
    // an op this table does not know yet is treated as time-dependent: the safe side
    const known: ValueFunctionUse = use ?? { name: op, dependsOn: 'time' };
    this.valueFunctions.set(known.name, Object.freeze(known));
    if (known.dependsOn === 'time') this.hazardFound('time-dependent', known.name);
  }

  constant(node: Struct): void {
    const text = (node.sval as { sval?: string } | undefined)?.sval;
    if (text !== undefined && TIME_LITERALS.has(text.trim().toLowerCase())) {
      this.hazardFound('time-dependent', `'${text}'`);
    }
  }

  fields(struct: Struct, scope: Scope, skip?: readonly string[]): void {
    for (const key in struct) {
      if (skip?.includes(key)) continue;
      this.visit(struct[key], scope);
    }
  }

  hazardFound(reason: NotCacheableReason, detail: string): void {
    this.hazard ??= { reason, detail };
  }
}

/** Analyzes one statement node of a parse result (RawStmt.stmt). */
export function analyzeStatement(stmt: Node | undefined): StatementPart {
  const struct = (stmt ?? {}) as Struct;
  const command = wrapperType(struct) ?? 'unknown';
  const node = (struct[command] ?? {}) as Struct;
  const walker = new StatementWalker();
  switch (command) {
    case 'SelectStmt': {
      walker.select(node as SelectStmt, READ);
      const kind = walker.selectInto ? 'ddl'
        : walker.dataModifyingCte ? 'write'
        : walker.sessionChanges.length > 0 ? 'session' : 'read';
      return finish(command, kind, walker, { writesUnlisted: walker.selectInto });
    }
    case 'InsertStmt': case 'UpdateStmt': case 'DeleteStmt': case 'MergeStmt':
      walker.modify(node as ModifyStmt, READ);
      return finish(command, 'write', walker);
    case 'TruncateStmt':
      walker.visit(node.relations, WRITE);
      return finish(command, 'write', walker);
    case 'RefreshMatViewStmt':
      walker.visit(node.relation, WRITE);
      return finish(command, 'write', walker);
    case 'ClusterStmt':
      return rewrite(command, node.relation, walker);
    case 'VacuumStmt':
      // VACUUM FULL rewrites its tables as CLUSTER does; plain VACUUM and ANALYZE move no row.
      if (!vacuumsFull(node)) break;
      return rewrite(command, ((node.rels ?? []) as Struct[]).map((r) => (r.VacuumRelation as Struct | undefined)?.relation), walker);
    case 'CopyStmt': return copy(node as CopyStmt, walker);
    case 'ExplainStmt': return explain(node as ExplainStmt);
    case 'CreateTableAsStmt': // CREATE TABLE AS, CREATE MATERIALIZED VIEW, SELECT INTO via EXPLAIN
      walker.visit((node.into as Struct | undefined)?.rel, WRITE);
      walker.visit(node.query, READ);
      return finish(command, 'ddl', walker, { writesUnlisted: true });
    case 'DeclareCursorStmt':
      walker.visit(node.query, READ);
      return finish(command, walker.dataModifyingCte ? 'write' : 'other', walker);
    case 'TransactionStmt': {
      const action = transactionAction(node as TransactionStmt);
      // the prepared transaction's writes were made earlier, maybe by another session
      return finish(command, 'transaction', walker, {
        transaction: action, writesUnlisted: action === 'commit_prepared',
        readOnly: (action === 'begin' || action === 'start') && opensReadOnly(node as TransactionStmt),
      });
    }
    case 'ConstraintsSetStmt':
      return finish(command, 'transaction', walker);
    case 'VariableSetStmt': {
      const set = node as VariableSetStmt;
      if (set.name === 'TRANSACTION') return finish(command, 'transaction', walker);
      walker.sessionChanges.push(sessionChange(set));
      return finish(command, 'session', walker);
    }
    case 'DiscardStmt':
      walker.sessionChanges.push(Object.freeze({
        action: 'discard', setting: String(node.target ?? 'DISCARD_ALL').replace('DISCARD_', '').toLowerCase(), local: false,
      }));
      return finish(command, 'session', walker);
  }
  if (OPAQUE_NODES.has(command)) {
    if (command === 'CallStmt') walker.funcCall((node as CallStmt).funccall ?? {}, READ);
    return finish(command, 'other', walker, { writesUnlisted: true });
  }
  if (OTHER_NODES.has(command)) return finish(command, 'other', walker);
  // Everything else changes schema, privileges or objects: relations named outside a query are
  // the objects changed, those inside a query (a view's definition) are read.
  if (command === 'DropStmt') droppedRelations(node as DropStmt, walker);
  else walker.visit(node, WRITE);
  return finish(command, 'ddl', walker, { writesUnlisted: true, serverWide: changesServer(command, node) });
}

/**
 * CLUSTER and VACUUM FULL write every row of their tables anew: no value changes, but each row's
 * ctid does (a query may read it), so they invalidate the tables as a write would. Without a table
 * they rewrite any of the database's.
 */
function rewrite(command: string, relations: unknown, walker: StatementWalker): StatementPart {
  const named = Array.isArray(relations) ? relations.length > 0 : relations !== undefined;
  walker.visit(relations, WRITE);
  return finish(command, 'write', walker, { writesUnlisted: !named });
}

/** A FULL option in any spelling, even `FULL false`: when unsure, invalidate. */
function vacuumsFull(node: Struct): boolean {
  return ((node.options ?? []) as Struct[]).some((o) => (o.DefElem as Struct | undefined)?.defname === 'full');
}

function changesServer(command: string, node: Struct): boolean {
  if (SERVER_NODES.has(command)) return true;
  switch (command) {
    case 'GrantStmt': return SERVER_OBJECTS.has(String(node.objtype));
    case 'RenameStmt': return SERVER_OBJECTS.has(String(node.renameType));
    case 'AlterOwnerStmt': return SERVER_OBJECTS.has(String(node.objectType));
    default: return false;
  }
}

function copy(stmt: CopyStmt, walker: StatementWalker): StatementPart {
  if (stmt.is_from) {
    if (stmt.relation) walker.relation(stmt.relation, WRITE);
    walker.visit(stmt.whereClause, READ);
    return finish('CopyStmt', 'write', walker, { reason: 'copy' });
  }
  if (stmt.relation) walker.relation(stmt.relation, READ);
  // COPY (query) TO accepts INSERT/UPDATE/DELETE/MERGE ... RETURNING as well as SELECT
  walker.visit(stmt.query, READ);
  const kind = walker.written.list().length > 0 ? 'write' : 'read';
  return finish('CopyStmt', kind, walker, { reason: 'copy' });
}

/** EXPLAIN ANALYZE runs the statement, so it does what the statement does; plain EXPLAIN does nothing. */
function explain(stmt: ExplainStmt): StatementPart {
  const analyze = (stmt.options ?? []).some((option) => {
    const def = (option as { DefElem?: DefElem }).DefElem;
    return def?.defname === 'analyze' && optionIsTrue(def.arg);
  });
  if (analyze) {
    const inner = analyzeStatement(stmt.query);
    return Object.freeze({ ...inner, command: 'ExplainStmt', cacheable: false, reasonNotCacheable: 'explain', reasonDetail: 'EXPLAIN ANALYZE' });
  }
  return finish('ExplainStmt', 'other', new StatementWalker(), { reason: 'explain' });
}

interface FinishOptions {
  reason?: NotCacheableReason;
  transaction?: TransactionAction;
  readOnly?: boolean;
  writesUnlisted?: boolean;
  serverWide?: boolean;
}

function finish(command: string, kind: StatementKind, walker: StatementWalker, options: FinishOptions = {}): StatementPart {
  const notARead = kind !== 'read' ? { reason: 'not-a-read' as const, detail: command } : null;
  const verdict = options.reason ? { reason: options.reason, detail: command }
    : walker.dataModifyingCte ? { reason: 'data-modifying-cte' as const, detail: 'WITH ... (INSERT/UPDATE/DELETE/MERGE)' }
    : walker.selectInto ? { reason: 'select-into' as const, detail: 'SELECT INTO' }
    // a SELECT that is not a read is so because of what it calls (set_config): name that first
    : command === 'SelectStmt' ? walker.hazard ?? notARead
    : notARead ?? walker.hazard;
  const part: StatementPart = {
    command,
    kind,
    cacheable: verdict === null,
    ...(verdict ? { reasonNotCacheable: verdict.reason, reasonDetail: verdict.detail } : {}),
    ...(options.transaction ? { transaction: options.transaction } : {}),
    ...(options.readOnly ? { readOnly: true } : {}),
    tablesRead: Object.freeze(walker.read.list()),
    tablesWritten: Object.freeze(walker.written.list()),
    writesUnlisted: options.writesUnlisted ?? false,
    serverWide: options.serverWide ?? false,
    functions: Object.freeze(walker.functions.list()),
    valueFunctions: Object.freeze([...walker.valueFunctions.values()]),
    sessionChanges: Object.freeze([...walker.sessionChanges]),
  };
  return Object.freeze(part);
}

function droppedRelations(stmt: DropStmt, walker: StatementWalker): void {
  if (!DROPPED_RELATIONS.has(stmt.removeType ?? '')) return;
  for (const object of stmt.objects ?? []) {
    const parts = ((object as { List?: { items?: Node[] } }).List?.items ?? []).map(stringValue);
    const name = parts[parts.length - 1];
    if (name !== undefined) walker.written.add(parts.length > 1 ? parts[parts.length - 2]! : null, name);
  }
}

function sessionChange(set: VariableSetStmt): SessionChange {
  const action = set.kind === 'VAR_RESET_ALL' ? 'reset-all'
    : set.kind === 'VAR_RESET' || set.kind === 'VAR_SET_DEFAULT' ? 'reset' : 'set';
  return Object.freeze({ action, setting: set.name?.toLowerCase() ?? null, local: set.is_local === true });
}

function transactionAction(stmt: TransactionStmt): TransactionAction {
  return String(stmt.kind).replace('TRANS_STMT_', '').toLowerCase() as TransactionAction;
}

/**
 * The options say READ ONLY and never READ WRITE. PostgreSQL applies them in order (the last
 * wins); requiring all of them to agree is simpler and never wrong in the unsafe direction.
 */
function opensReadOnly(stmt: TransactionStmt): boolean {
  let readOnly = false;
  for (const option of stmt.options ?? []) {
    const def = (option as { DefElem?: DefElem }).DefElem;
    if (def?.defname !== 'transaction_read_only') continue;
    if (constantText(def.arg) !== '1') return false;
    readOnly = true;
  }
  return readOnly;
}

/** The node type of a wrapper ({SelectStmt: {...}}), or null for a bare struct. */
function wrapperType(struct: Struct): string | null {
  let type: string | null = null;
  for (const key in struct) {
    if (type !== null) return null; // more than one field: a struct
    type = key;
  }
  if (type === null) return null;
  const first = type.charCodeAt(0);
  return first >= 65 && first <= 90 ? type : null; // node types start with a capital, fields do not
}

function stringValue(node: Node): string {
  return (node as { String?: { sval?: string } }).String?.sval ?? '';
}

/** The text of a constant argument (string, integer or boolean), or undefined for anything else. */
function constantText(node: Node | undefined): string | undefined {
  const constant = (node as { A_Const?: Struct } | undefined)?.A_Const;
  if (!constant) return undefined;
  if (constant.sval) return (constant.sval as { sval?: string }).sval ?? '';
  if (constant.ival) return String((constant.ival as { ival?: number }).ival ?? 0);
  if (constant.boolval) return String((constant.boolval as { boolval?: boolean }).boolval ?? false);
  return undefined;
}

/** EXPLAIN's boolean option: only a literal false/off/0 turns it off, like PostgreSQL's defGetBoolean. */
function optionIsTrue(arg: Node | undefined): boolean {
  if (arg === undefined) return true;
  const struct = arg as Struct;
  if (struct.Integer) return ((struct.Integer as { ival?: number }).ival ?? 0) !== 0;
  const text = (struct.String as { sval?: string } | undefined)?.sval?.toLowerCase();
  return text !== 'false' && text !== 'off';
}

function lockingText(strength: string | undefined): string {
  switch (strength) {
    case 'LCS_FORKEYSHARE': return 'FOR KEY SHARE';
    case 'LCS_FORSHARE': return 'FOR SHARE';
    case 'LCS_FORNOKEYUPDATE': return 'FOR NO KEY UPDATE';
    default: return 'FOR UPDATE';
  }
}
