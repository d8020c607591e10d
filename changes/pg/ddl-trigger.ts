// The event trigger of --pg-cdc-ddl on: DDL, GRANT and REVOKE are not in pgoutput's stream, so a
// trigger on ddl_command_end and sql_drop writes a transactional logical decoding message
// (pg_logical_emit_message) naming the relations a command touched, which the stream delivers at
// the command's commit (pgoutput-tracker.ts reads it). The way ReadySet sees DDL.
//
// What it reports: the relation names of the objects a command created or dropped when they are all
// relations (tables, views, materialized views, indexes, sequences) and the command is one of
// BOUNDED_COMMANDS; `null` (the whole database) otherwise: ALTER, objects that are not relations
// (a function, type, policy, trigger...), commands that name no object (GRANT, REVOKE). Parts of a dropped relation (its row type, rules,
// constraints, defaults, triggers, policies) do not count. It never fails the user's command: an error
// inside becomes a warning, and that DDL is then bounded by the TTL only.

/** Bumped when the function changes, so older installations are replaced. */
const VERSION = 'sidecache ddl trigger v1';

/**
 * Commands whose effect on cached results is bounded by the relations they name. Any other
 * (ALTER, which may rename a relation so that entries carrying its old name outlive it; GRANT;
 * CREATE FUNCTION; ...) drops the whole database.
 */
export const BOUNDED_COMMANDS: readonly string[] = [
  'CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO', 'CREATE VIEW', 'CREATE MATERIALIZED VIEW', 'REFRESH MATERIALIZED VIEW',
  'CREATE INDEX', 'CREATE SEQUENCE', 'COMMENT',
  'DROP TABLE', 'DROP VIEW', 'DROP MATERIALIZED VIEW', 'DROP INDEX', 'DROP SEQUENCE', 'DROP FOREIGN TABLE',
];

export const DDL_SCHEMA = 'sidecache';
export const DDL_FUNCTION = `${DDL_SCHEMA}.ddl_message`;
export const DDL_TRIGGERS = { end: 'sidecache_ddl_end', drop: 'sidecache_ddl_drop' } as const;

export const DDL_FUNCTION_SQL = `CREATE OR REPLACE FUNCTION ${DDL_FUNCTION}() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $body$
-- ${VERSION}: reports each DDL command's relations to sidecache's change stream.
DECLARE
  relations text[] := '{}';
  unsure boolean := false;
  seen integer := 0;
  r record;
  name text;
BEGIN
  IF tg_event = 'sql_drop' THEN
    FOR r IN SELECT * FROM pg_event_trigger_dropped_objects() LOOP
      seen := seen + 1;
      IF r.classid = 'pg_class'::regclass THEN
        name := coalesce(r.object_name, (SELECT c.relname FROM pg_class c WHERE c.oid = r.objid));
        IF name IS NULL THEN unsure := true; ELSE relations := relations || name; END IF;
      ELSIF r.original OR r.object_type NOT IN ('type', 'rule', 'default value', 'table constraint', 'trigger', 'policy') THEN
        -- Named by the command (DROP FUNCTION), or dropped with it and not a part of a relation.
        unsure := true;
      END IF;
    END LOOP;
  ELSE
    FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() LOOP
      seen := seen + 1;
      IF r.classid = 'pg_class'::regclass THEN
        name := (SELECT c.relname FROM pg_class c WHERE c.oid = r.objid);
        IF name IS NULL THEN unsure := true; ELSE relations := relations || name; END IF;
      ELSE
        unsure := true;
      END IF;
    END LOOP;
  END IF;
  IF seen = 0 AND tg_event = 'ddl_command_end' AND tg_tag LIKE 'DROP %' AND tg_tag <> 'DROP OWNED' THEN
    RETURN; -- a DROP reports its objects at sql_drop
  END IF;
  IF seen = 0 THEN unsure := true; END IF; -- GRANT, REVOKE, DROP OWNED: no object named
  IF tg_tag NOT IN (${BOUNDED_COMMANDS.map((c) => `'${c}'`).join(', ')}) THEN
    unsure := true; -- ALTER may rename: entries tagged with the old name would survive
  END IF;
  PERFORM pg_logical_emit_message(true, 'sidecache.ddl',
    json_build_object('tag', tg_tag, 'relations', CASE WHEN unsure THEN NULL ELSE to_json(relations) END)::text);
EXCEPTION WHEN OTHERS THEN
  RAISE WARNING 'sidecache.ddl_message: %', SQLERRM;
END
$body$`;

/** The statements that install the trigger, for the error message and the docs. */
export const DDL_INSTALL_SQL: readonly string[] = [
  `CREATE SCHEMA IF NOT EXISTS ${DDL_SCHEMA}`,
  DDL_FUNCTION_SQL,
  `CREATE EVENT TRIGGER ${DDL_TRIGGERS.end} ON ddl_command_end EXECUTE FUNCTION ${DDL_FUNCTION}()`,
  `CREATE EVENT TRIGGER ${DDL_TRIGGERS.drop} ON sql_drop EXECUTE FUNCTION ${DDL_FUNCTION}()`,
];

/** Is the installed function this version? (`prosrc` of ddl_message, null when missing.) */
export function isCurrentFunction(source: string | null): boolean {
  return source !== null && source.includes(VERSION);
}
