// What the MySQL/MariaDB analysis knows without asking the server: which built-in functions give
// different answers under an equal cache key (time, randomness, connection state, locks), which
// names are built-ins at all (anything else is a stored function or a loadable UDF, whose behaviour
// only information_schema.ROUTINES / mysql.func can tell), the system databases, and the session
// settings known not to change any result. Names are lower case; function names in MySQL are
// case-insensitive, and an unqualified built-in name always means the built-in.

/** Why a built-in function call forbids caching. */
export type BuiltinHazard = 'time-dependent' | 'unstable-function';

const TIME_DEPENDENT = [
  'now', 'sysdate', 'curdate', 'current_date', 'curtime', 'current_time', 'current_timestamp',
  'localtime', 'localtimestamp', 'utc_date', 'utc_time', 'utc_timestamp',
];

const UNSTABLE = [
  // randomness
  'rand', 'uuid', 'uuid_short', 'uuid_v4', 'uuid_v7', 'sys_guid', 'random_bytes', 'encrypt',
  // the connection's own state, which a shared entry cannot carry
  'connection_id', 'last_insert_id', 'found_rows', 'row_count', 'lastval',
  'ps_current_thread_id', 'ps_thread_id',
  // side effects, waits and locks
  'sleep', 'benchmark', 'get_lock', 'release_lock', 'release_all_locks', 'is_free_lock', 'is_used_lock',
  'master_pos_wait', 'master_gtid_wait', 'source_pos_wait', 'wait_for_executed_gtid_set',
  'wait_until_sql_thread_after_gtids', 'binlog_gtid_pos', 'wsrep_last_seen_gtid', 'wsrep_last_written_gtid',
  'wsrep_sync_wait_upto_gtid',
  // the server's file system
  'load_file',
];

/** MariaDB sequence functions that advance or set a sequence: they write it. */
export const SEQUENCE_WRITERS: ReadonlySet<string> = new Set(['nextval', 'setval']);

/**
 * Keywords that call a time function without parentheses (SELECT CURRENT_DATE). CURRENT_USER and
 * CURRENT_ROLE need no entry: they depend only on the user and role, which the cache key holds.
 */
export const TIME_KEYWORDS: ReadonlySet<string> = new Set([
  'CURRENT_TIMESTAMP', 'CURRENT_DATE', 'CURRENT_TIME', 'LOCALTIME', 'LOCALTIMESTAMP', 'UTC_DATE', 'UTC_TIME', 'UTC_TIMESTAMP',
]);

const HAZARDS: ReadonlyMap<string, BuiltinHazard> = new Map<string, BuiltinHazard>([
  ...TIME_DEPENDENT.map((name) => [name, 'time-dependent'] as const),
  ...UNSTABLE.map((name) => [name, 'unstable-function'] as const),
]);

/** The hazard of calling built-in `name` with `argCount` arguments, or null. */
export function builtinHazard(name: string, argCount: number): BuiltinHazard | null {
  // UNIX_TIMESTAMP() is the current time; UNIX_TIMESTAMP(d) converts d under time_zone (in the key)
  if (name === 'unix_timestamp' && argCount === 0) return 'time-dependent';
  return HAZARDS.get(name) ?? null;
}

// Built-ins whose result depends only on their arguments and on session settings the cache key
// holds (character set, collation, time_zone, sql_mode, user, database). Spatial functions are
// matched by prefix below.
const DETERMINISTIC = `
  if ifnull nullif nvl nvl2 coalesce greatest least isnull interval decode_oracle
  ascii bin bit_length char character_length char_length chr concat concat_ws elt export_set extractvalue
  field find_in_set format from_base64 hex insert instr lcase left length lengthb locate lower lpad ltrim
  make_set mid natural_sort_key octet_length ord position quote regexp_instr regexp_replace regexp_substr
  regexp_like repeat replace reverse right rpad rtrim sformat soundex space strcmp substr substring
  substring_index to_base64 to_char trim trim_oracle ucase unhex updatexml upper weight_string cast convert
  match collation charset coercibility binary
  column_create column_add column_delete column_exists column_get column_list column_check column_json
  adddate addtime add_months convert_tz date datediff date_add date_format date_sub day dayname dayofmonth
  dayofweek dayofyear extract from_days from_unixtime get_format hour last_day makedate maketime microsecond
  minute month monthname months_between period_add period_diff quarter second sec_to_time str_to_date
  subdate subtime time timediff timestamp timestampadd timestampdiff time_format time_to_sec to_date to_days
  to_seconds trunc week weekday weekofyear year yearweek unix_timestamp format_pico_time format_bytes
  abs acos asin atan atan2 ceil ceiling conv cos cot crc32 crc32c degrees exp floor ln log log10 log2 mod oct
  pi pow power radians round sign sin sqrt tan to_number truncate bit_count div
  avg bit_and bit_or bit_xor count group_concat json_arrayagg json_objectagg max min std stddev stddev_pop
  stddev_samp sum variance var_pop var_samp percentile_cont percentile_disc median grouping any_value
  row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value nth_value
  json_array json_array_append json_array_insert json_array_intersect json_compact json_contains
  json_contains_path json_depth json_detailed json_equals json_exists json_extract json_insert json_keys
  json_length json_loose json_merge json_merge_patch json_merge_preserve json_normalize json_object
  json_object_filter_keys json_object_to_array json_overlaps json_pretty json_query json_quote json_remove
  json_replace json_schema_valid json_search json_set json_table json_type json_unquote json_valid json_value
  json_storage_size json_storage_free
  aes_encrypt aes_decrypt compress uncompress uncompressed_length decode encode des_encrypt des_decrypt
  md5 sha sha1 sha2 password old_password kdf
  database schema user current_user session_user system_user current_role version default values value
  name_const rownum decode_histogram
  inet_aton inet_ntoa inet6_aton inet6_ntoa is_ipv4 is_ipv4_compat is_ipv4_mapped is_ipv6
  bin_to_uuid uuid_to_bin is_uuid statement_digest statement_digest_text icu_version gtid_subset gtid_subtract
  point linestring polygon multipoint multilinestring multipolygon geometrycollection
  area asbinary astext aswkb aswkt boundary buffer centroid contains convexhull crosses dimension disjoint
  endpoint envelope equals exteriorring geomcollfromtext geomcollfromwkb geometrycollectionfromtext
  geometrycollectionfromwkb geometryfromtext geometryfromwkb geometryn geometrytype geomfromtext geomfromwkb
  glength interiorringn intersects isclosed isempty isring issimple linefromtext linefromwkb
  linestringfromtext linestringfromwkb mlinefromtext mlinefromwkb mpointfromtext mpointfromwkb
  mpolyfromtext mpolyfromwkb multilinestringfromtext multilinestringfromwkb multipointfromtext
  multipointfromwkb multipolygonfromtext multipolygonfromwkb numgeometries numinteriorrings numpoints
  overlaps pointfromtext pointfromwkb pointn pointonsurface polyfromtext polyfromwkb polygonfromtext
  polygonfromwkb srid startpoint touches within x y
`;

const BUILTINS: ReadonlySet<string> = new Set([
  ...DETERMINISTIC.split(/\s+/).filter((name) => name.length > 0),
  ...TIME_DEPENDENT, ...UNSTABLE, ...SEQUENCE_WRITERS, 'unix_timestamp',
]);

/** True when an unqualified call of `name` (lower case) is a built-in function. */
export function isBuiltinFunction(name: string): boolean {
  return BUILTINS.has(name) || name.startsWith('st_') || name.startsWith('mbr');
}

/**
 * Databases whose tables change without a write through the proxy (information_schema follows
 * DDL, performance_schema and sys follow activity, mysql follows GRANT and friends): never cached.
 */
export function isSystemDatabase(name: string): boolean {
  const lower = name.toLowerCase();
  return lower === 'information_schema' || lower === 'performance_schema' || lower === 'mysql' || lower === 'sys';
}

// Session settings that change no query result (timeouts, logging, write-only checks, buffers).
// Every other setting may, so a change to it is reported with affectsResults (the safe default).
const SETTINGS_WITHOUT_RESULT_EFFECT: ReadonlySet<string> = new Set([
  'autocommit', 'sql_log_bin', 'sql_log_off', 'wait_timeout', 'interactive_timeout', 'net_read_timeout',
  'net_write_timeout', 'net_retry_count', 'lock_wait_timeout', 'innodb_lock_wait_timeout',
  'max_execution_time', 'max_statement_time', 'long_query_time', 'log_slow_query', 'slow_query_log',
  'profiling', 'profiling_history_size', 'sql_notes', 'sql_warnings', 'sql_safe_updates', 'unique_checks',
  'foreign_key_checks', 'sql_buffer_result', 'big_tables', 'tmp_table_size', 'max_heap_table_size',
  'sort_buffer_size', 'join_buffer_size', 'read_buffer_size', 'read_rnd_buffer_size',
  'bulk_insert_buffer_size', 'binlog_format', 'auto_increment_increment', 'auto_increment_offset',
  'insert_id', 'last_insert_id', 'identity', 'rand_seed1', 'rand_seed2', 'timestamp', 'pseudo_thread_id',
  'skip_replication', 'query_cache_type', 'innodb_strict_mode', 'check_constraint_checks',
  'default_storage_engine', 'default_tmp_storage_engine', 'storage_engine', 'completion_type',
  'session_track_schema', 'session_track_state_change', 'session_track_system_variables',
  'session_track_transaction_info', 'session_track_gtids', 'sql_quote_show_create',
  // Read-only mode refuses writes and changes no read (Connector/J's setReadOnly sets it); the
  // isolation level does change what a read sees, so it is not here.
  'transaction_read_only', 'tx_read_only',
]);

/** False only for settings known to change no result; unknown settings count as changing results. */
export function settingAffectsResults(name: string | null): boolean {
  return name === null || !SETTINGS_WITHOUT_RESULT_EFFECT.has(name);
}
