// test-timeout: 180
// Sequelize (an ORM, on node-postgres and on mysql2) through the proxy, on both protocols: one
// scenario (models with an association, sync, create, bulkCreate, findAll with an include repeated,
// findByPk, update, save, destroy, count, a managed transaction that commits and an unmanaged one
// that rolls back) gives the same results through sidecache as directly against the server. The
// repeated reads are hits, and every read after a write through the ORM sees the write.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DataTypes, Sequelize, type ModelStatic, type Model, type Options } from 'sequelize';
import { DIRECT_MYSQL, directMySql } from './support/mysql-direct.js';
import { mysqlCacheCounters } from './support/mysql-metrics.js';
import { cacheCounters } from './support/metrics.js';
import { DIRECT_PG, direct, uniqueName } from './support/pg-direct.js';
import { DIRECT_MYSQL_URL, startProxy, type RunningProxy } from './support/sidecache.js';

let proxy: RunningProxy;
const mysqlDb = uniqueName('sc_orm');
const pgTables: string[] = [];

test.before(async () => {
  proxy = await startProxy({ mysqlUpstream: DIRECT_MYSQL_URL });
  await directMySql(`CREATE DATABASE ${mysqlDb}`);
});

test.after(async () => {
  await proxy?.stop();
  await directMySql(`DROP DATABASE IF EXISTS ${mysqlDb}`).catch(() => undefined);
  for (const t of pgTables) await direct(`DROP TABLE IF EXISTS ${t}_reviews, ${t}`);
});

/** Hits and misses of one protocol's cache. */
interface HitsMisses {
  hits: number;
  misses: number;
}

/** Runs one step of the scenario; through the proxy it also records what the step did to the cache. */
type Step = <T>(name: string, work: () => Promise<T>) => Promise<T>;

function sequelize(dialect: 'postgres' | 'mysql', port: number): Sequelize {
  const common: Options = { host: '127.0.0.1', port, logging: false, pool: { max: 2, idle: 1000 } };
  return dialect === 'postgres'
    ? new Sequelize(DIRECT_PG.database, DIRECT_PG.user, '', { ...common, dialect })
    : new Sequelize(mysqlDb, DIRECT_MYSQL.user, DIRECT_MYSQL.password, { ...common, dialect });
}

/** The scenario: every result a user of the ORM sees goes into the returned log. */
async function scenario(seq: Sequelize, table: string, step: Step): Promise<unknown[]> {
  const log: unknown[] = [];
  const Item: ModelStatic<Model> = seq.define('Item', {
    id: { type: DataTypes.INTEGER, autoIncrement: true, primaryKey: true },
    name: { type: DataTypes.STRING(40), allowNull: false, unique: true },
    price: DataTypes.DECIMAL(10, 2),
    qty: DataTypes.BIGINT,
    active: { type: DataTypes.BOOLEAN, allowNull: false, defaultValue: true },
    meta: DataTypes.JSON,
    madeAt: DataTypes.DATE(3),
  }, { tableName: table, timestamps: false });
  const Review = seq.define('Review', {
    id: { type: DataTypes.INTEGER, autoIncrement: true, primaryKey: true },
    stars: { type: DataTypes.INTEGER, allowNull: false },
  }, { tableName: `${table}_reviews`, timestamps: false });
  Item.hasMany(Review, { foreignKey: 'itemId', onDelete: 'CASCADE' });
  Review.belongsTo(Item, { foreignKey: 'itemId' });

  await Review.drop();
  await Item.sync({ force: true });
  await Review.sync({ force: true });
  const first = await Item.create({ name: 'apple ✓', price: '0.50', qty: 9007199254740993n.toString(), meta: { colour: 'red', sizes: [1, 2] },
    madeAt: new Date('2024-02-29T13:45:56.789Z') });
  log.push(['create', first.get({ plain: true })]);
  await Item.bulkCreate([
    { name: 'pear', price: '1.25', qty: 3, active: true, meta: null, madeAt: null },
    { name: 'plum', price: null, qty: -1, active: false, meta: { note: "it's" }, madeAt: new Date('2000-01-01T00:00:00Z') },
    { name: 'fig', price: '99999999.99', qty: 0, active: true, meta: [], madeAt: new Date('1999-12-31T23:59:59.999Z') },
  ]);
  await Review.bulkCreate([{ itemId: 1, stars: 5 }, { itemId: 1, stars: 3 }, { itemId: 2, stars: 4 }]);

  const activeWithReviews = (): Promise<unknown> => Item.findAll({
    where: { active: true }, include: [{ model: Review }], order: [['id', 'ASC'], [Review, 'id', 'ASC']],
  }).then((rows) => rows.map((r) => r.get({ plain: true })));
  log.push(['repeated', await step('repeated', async () => {
    const results: unknown[] = [];
    for (let i = 0; i < 5; i++) results.push(await activeWithReviews());
    return results;
  })]);

  // A write to the joined table changes the join's result.
  log.push(['after review write', await step('after-review-write', async () => {
    await Review.create({ itemId: 2, stars: 1 });
    return activeWithReviews();
  })]);
  log.push(['after update', await step('after-update', async () => {
    log.push(['update', await Item.update({ price: '0.75', meta: { colour: 'green' } }, { where: { name: 'apple ✓' } })]);
    return activeWithReviews();
  })]);

  log.push(['findByPk', await step('find-by-pk', async () => [
    (await Item.findByPk(2))?.get({ plain: true }), (await Item.findByPk(2))?.get({ plain: true }),
  ])]);
  log.push(['after save', await step('after-save', async () => {
    const pear = await Item.findByPk(2);
    pear!.set('qty', 30);
    await pear!.save();
    return (await Item.findByPk(2))?.get({ plain: true });
  })]);

  log.push(['managed transaction', await step('transactions', async () => {
    const inside = await seq.transaction(async (t) => {
      await Item.create({ name: 'kiwi', price: '2.00', qty: 7 }, { transaction: t });
      return Item.count({ where: { active: true }, transaction: t });
    });
    const after = await Item.count({ where: { active: true } });
    const t = await seq.transaction();
    await Item.update({ active: false }, { where: { name: 'pear' }, transaction: t });
    await Item.destroy({ where: { name: 'fig' }, transaction: t });
    const insideRolledBack = await Item.count({ where: { active: true }, transaction: t });
    await t.rollback();
    return { inside, after, insideRolledBack, afterRollback: await activeWithReviews() };
  })]);

  log.push(['destroy', await step('after-destroy', async () => {
    const destroyed = await Item.destroy({ where: { name: 'pear' } });
    return { destroyed, count: await Item.count({ where: { active: true } }), reviews: await Review.count(), rows: await activeWithReviews() };
  })]);

  await Review.drop();
  await Item.drop();
  return log;
}

/** The scenario directly, then through the proxy (same table names: the scenario recreates them). */
async function bothWays(dialect: 'postgres' | 'mysql', table: string): Promise<{ direct: unknown[]; proxied: unknown[]; steps: Record<string, HitsMisses> }> {
  const directPort = dialect === 'postgres' ? DIRECT_PG.port : DIRECT_MYSQL.port;
  const proxyPort = dialect === 'postgres' ? proxy.pgPort : proxy.mysqlPort;
  const counters = async (): Promise<HitsMisses> => {
    const c = dialect === 'postgres' ? await cacheCounters(proxy.adminPort) : await mysqlCacheCounters(proxy.adminPort);
    return { hits: c.hits, misses: c.misses };
  };
  const run = async (port: number, step: Step): Promise<unknown[]> => {
    const seq = sequelize(dialect, port);
    try {
      return await scenario(seq, table, step);
    } finally {
      await seq.close();
    }
  };
  const viaServer = await run(directPort, (_name, work) => work());
  const steps: Record<string, HitsMisses> = {};
  const viaProxy = await run(proxyPort, async (name, work) => {
    const before = await counters();
    const result = await work();
    const after = await counters();
    steps[name] = { hits: after.hits - before.hits, misses: after.misses - before.misses };
    return result;
  });
  return { direct: viaServer, proxied: viaProxy, steps };
}

function assertScenario(run: { direct: unknown[]; proxied: unknown[]; steps: Record<string, HitsMisses> }): void {
  const byLabel = new Map(run.direct.map((entry) => [(entry as [string, unknown])[0], (entry as [string, unknown])[1]]));
  // The direct run is the reference; make sure it saw every write.
  const afterUpdate = byLabel.get('after update') as Array<{ name: string; price: string }>;
  assert.is(afterUpdate.find((r) => r.name === 'apple ✓')?.price, '0.75');
  const afterReview = byLabel.get('after review write') as Array<{ id: number; Reviews: unknown[] }>;
  assert.is(afterReview.find((r) => r.id === 2)?.Reviews.length, 2);
  assert.is(String((byLabel.get('after save') as { qty: unknown }).qty), '30');
  assert.equal(run.proxied, run.direct);

  const s = run.steps;
  assert.equal(s.repeated, { hits: 4, misses: 1 }, `findAll repeated: ${JSON.stringify(s.repeated)}`);
  assert.is(s['after-review-write']!.hits, 0, `read after a write to the joined table: ${JSON.stringify(s['after-review-write'])}`);
  assert.is(s['after-update']!.hits, 0, `read after an UPDATE: ${JSON.stringify(s['after-update'])}`);
  assert.equal(s['find-by-pk'], { hits: 1, misses: 1 }, `findByPk twice: ${JSON.stringify(s['find-by-pk'])}`);
  assert.is(s['after-save']!.hits, 1, `only the findByPk before save() hits: ${JSON.stringify(s['after-save'])}`);
  assert.is(s.transactions!.hits, 0, `reads in or after transactions that wrote: ${JSON.stringify(s.transactions)}`);
  assert.is(s['after-destroy']!.hits, 0, `reads after a destroy: ${JSON.stringify(s['after-destroy'])}`);
}

test('Sequelize on PostgreSQL (node-postgres): same results as direct, repeated finds hit, writes are seen', async () => {
  const table = uniqueName('sc_orm_items');
  pgTables.push(table);
  assertScenario(await bothWays('postgres', table));
});

test('Sequelize on MariaDB (mysql2): same results as direct, repeated finds hit, writes are seen', async () => {
  assertScenario(await bothWays('mysql', 'items'));
});

test.run();
