// Helpers for e2e tests that compare the proxy with MariaDB itself: mysql2 connections to either
// side, and statements run on a short-lived direct connection (setup, cleanup, look-ups).
import mysql from 'mysql2/promise';
import { DIRECT_MYSQL } from './sidecache.js';

export { DIRECT_MYSQL };
export { uniqueName } from './pg-direct.js';

export type MySqlConnection = mysql.Connection;

export function mysqlConfig(port: number, extra: mysql.ConnectionOptions = {}): mysql.ConnectionOptions {
  return {
    host: DIRECT_MYSQL.host,
    port,
    user: DIRECT_MYSQL.user,
    password: DIRECT_MYSQL.password,
    database: DIRECT_MYSQL.database,
    // Text forms keep the comparison with the direct server exact (no time zone or float conversion).
    dateStrings: true,
    supportBigNumbers: true,
    bigNumberStrings: true,
    ...extra,
  };
}

export function connectMySql(port: number, extra: mysql.ConnectionOptions = {}): Promise<mysql.Connection> {
  return mysql.createConnection(mysqlConfig(port, extra));
}

/** Statements on a short-lived direct connection; returns the last one's result. */
export function directMySql(...statements: string[]): Promise<unknown> {
  return statementsAt(DIRECT_MYSQL.port, {}, statements);
}

/** Statements on a short-lived connection to `port` (a private server's); returns the last one's result. */
export async function statementsAt(port: number, extra: mysql.ConnectionOptions, statements: readonly string[]): Promise<unknown> {
  const c = await connectMySql(port, extra);
  try {
    let last: unknown;
    for (const sql of statements) [last] = await c.query(sql);
    return last;
  } finally {
    await c.end();
  }
}

/** Runs `fn` once against the direct server and once through the proxy port; returns both results. */
export async function bothWays<T>(proxyPort: number, fn: (c: mysql.Connection) => Promise<T>, extra: mysql.ConnectionOptions = {}): Promise<{ direct: T; proxied: T }> {
  const run = async (port: number): Promise<T> => {
    const c = await connectMySql(port, extra);
    try {
      return await fn(c);
    } finally {
      await c.end();
    }
  };
  return { direct: await run(DIRECT_MYSQL.port), proxied: await run(proxyPort) };
}
