# sidecache build and test entry points. CI runs `make test` (see .ci/run).
#   make test [FILTER=pg]   install, type-check and build, make sure the databases are up, run all tests
#   make test-unit | make test-e2e   one phase only
#   make run ARGS='--pg-upstream postgres://127.0.0.1:5432'   build, then start sidecache
#   make bench [ARGS=...]   build, then run the benchmark (bench-mysql, bench-cdc, bench-fleet, bench-l2, ...: below)
# Test runner knobs: SIDECACHE_TEST_JOBS (files run at once, default 2); see scripts/run-tests.ts.

RUN_TESTS := node dist/scripts/run-tests.js

.PHONY: install build ensure-servers test test-unit test-e2e run bench clean docs

install: node_modules/.package-lock.json

# npm rewrites node_modules/.package-lock.json on every install, so it is older than
# package-lock.json (or missing) exactly when node_modules may not match the lock file.
node_modules/.package-lock.json: package-lock.json
	npm ci --no-audit --no-fund

# tsc emits JS even when types are wrong, but exits non-zero, which fails the build.
build: install
	node_modules/.bin/tsc -p tsconfig.json

ensure-servers:
	scripts/ensure-servers.sh

test: build ensure-servers
	$(RUN_TESTS) $(FILTER)

test-unit: build ensure-servers
	$(RUN_TESTS) --only unit $(FILTER)

test-e2e: build ensure-servers
	$(RUN_TESTS) --only e2e $(FILTER)

# With no upstream configured the CLI starts its own quick-start database.
run: build
	./bin/sidecache $(ARGS)

bench: build ensure-servers
	node dist/bench/run.js $(ARGS)

clean:
	rm -rf dist

# Regenerates docs/settings.md from config/settings.ts (a unit test fails when they differ).
docs: build
	node dist/scripts/gen-settings-doc.js

# The stale-read checker (e2e/consistency/run.ts): one minute through its own sidecache for every
# protocol that has a checker driver (a protocol without one is listed with a note); exit 1 on any
# violation. ARGS overrides, e.g. make check-consistency ARGS='--protocol postgres --seconds 10'.
.PHONY: check-consistency
check-consistency: build ensure-servers
	node dist/e2e/consistency/run.js --protocol all --seconds 60 $(ARGS)

# The change streams' bench (bench/cdc-run.ts): commit-to-invalidation lag and sidecache's CPU per
# decoded change while pgbench TPC-B / sysbench write straight to private servers at full speed.
.PHONY: bench-cdc
bench-cdc: build ensure-servers
	node dist/bench/cdc-run.js $(ARGS)

# The checker's change-stream mode: writers write straight to a private PostgreSQL (wal_level=logical)
# and MariaDB (ROW binlog) that sidecache follows (--pg-cdc, --mysql-cdc); a read may lag a write by
# the allowed lag (--allowed-lag-ms, default 1000), then every read path must be exact.
.PHONY: check-consistency-cdc
check-consistency-cdc: build ensure-servers
	node dist/e2e/consistency/run.js --protocol all --seconds 60 --direct-writes $(ARGS)

# The MySQL bench (bench/mysql-run.ts): sysbench direct vs sidecache vs MariaDB's query cache,
# about 2 minutes. ARGS overrides, e.g. make bench-mysql ARGS='--workloads hot-text --seconds 20';
# ARGS='--rtt 1ms' puts a private MariaDB behind a network hop (root, cc; bench/netns.ts).
.PHONY: bench-mysql
bench-mysql: build ensure-servers
	node dist/bench/mysql-run.js $(ARGS)

# Statements whose literals are new (bench/mysql-new-literals.ts): MariaDB direct vs sidecache with
# caching off vs sidecache, about a minute. ARGS overrides, e.g. ARGS='--statements 200 --rounds 1'.
# The stampede of issue 17 item 2 (bench/stampede.ts): 200 clients read one hot key through
# sidecache while a writer updates it every 100 ms; the database's executions of the read are
# counted with request coalescing off and on (pg_stat_statements / Com_select on private servers),
# about a minute. ARGS overrides, e.g. make bench-stampede ARGS='--protocols postgres --seconds 5'.
.PHONY: bench-stampede
bench-stampede: build ensure-servers
	node dist/bench/stampede.js $(ARGS)

.PHONY: bench-mysql-literals
bench-mysql-literals: build ensure-servers
	node dist/bench/mysql-new-literals.js $(ARGS)

# What a statement with a never-seen literal costs (bench/new-literals.ts): one client, N statements
# each with new literals, direct vs sidecache with caching off vs sidecache; about a minute.
# ARGS overrides, e.g. make bench-literals ARGS='--statements 2000 --workloads strings'.
.PHONY: bench-literals
bench-literals: build ensure-servers
	node dist/bench/new-literals.js $(ARGS)

# The fleet's figures, about 4 minutes: the bus's publish-to-apply lag (bench/fleet-lag.ts: a private
# redis-server, reader processes following the bus, invalidations at a steady rate; p50/p99 against
# p99 < 10 ms), then the second tier (bench/fleet-l2.ts, as make bench-l2). LAG_ARGS and L2_ARGS
# override each, e.g. make bench-fleet LAG_ARGS='--rate 1000' L2_ARGS='--minute-seconds 60'.
.PHONY: bench-fleet
bench-fleet: build ensure-servers
	node dist/bench/fleet-lag.js $(LAG_ARGS)
	node dist/bench/fleet-l2.js $(L2_ARGS)

# The fleet's second tier (bench/fleet-l2.ts), about 3 minutes: one read straight at the database,
# as a sidecache memory hit, as a second-tier (Redis) hit and as a bare Redis GET of the same bytes,
# p50/p99 and reads/s; then a new proxy's first minute in a warm fleet without and with --l2 on
# (hit ratio per 10 s, database reads). ARGS overrides, e.g. ARGS='--minute-seconds 60 --protocols postgres'.
.PHONY: bench-l2
bench-l2: build ensure-servers
	node dist/bench/fleet-l2.js $(ARGS)
