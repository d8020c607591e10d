// The quick start's database: an embedded PostgreSQL (PGlite) with a small sample schema, served
// on a loopback port so sidecache can sit in front of it exactly as it sits in front of a real server.
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import type { HostPort } from '../config/settings.js';

/**
 * PGlite runs one backend: every connection shares its session (settings, transactions). More than
 * one connection is allowed so several psql windows work, but they are not isolated from each other.
 */
const PGLITE_MAX_CONNECTIONS = 20;

const SAMPLE_SCHEMA = `
CREATE TABLE products (
  id integer PRIMARY KEY,
  name text NOT NULL,
  category text NOT NULL,
  price_cents integer NOT NULL
);
INSERT INTO products
  SELECT i, 'product ' || i, (ARRAY['books','games','tools','food'])[1 + i % 4], 100 + (i * 37) % 9900
  FROM generate_series(1, 1000) AS i;
CREATE TABLE orders (
  id serial PRIMARY KEY,
  product_id integer NOT NULL REFERENCES products(id),
  quantity integer NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO orders (product_id, quantity)
  SELECT 1 + (i * 7) % 1000, 1 + i % 5 FROM generate_series(1, 5000) AS i;
`;

export interface EmbeddedPostgres {
  address: HostPort;
  stop(): Promise<void>;
}

export async function startEmbeddedPostgres(): Promise<EmbeddedPostgres> {
  const db = await PGlite.create();
  await db.exec(SAMPLE_SCHEMA);
  const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: PGLITE_MAX_CONNECTIONS });
  await server.start();
  const port = Number(/:(\d+)$/.exec(server.getServerConn())?.[1]);
  return {
    address: { host: '127.0.0.1', port },
    async stop() {
      await server.stop();
      await db.close();
    },
  };
}
