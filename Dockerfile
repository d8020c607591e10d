# sidecache container image: `docker build -t sidecache .` (see docs/deploy.md).
#
# Debian slim rather than Alpine: every runtime dependency is plain JavaScript or WASM (no native
# addons), so musl would work, but Node.js on musl is an "experimental" platform upstream while glibc
# is tier 1, and glibc is what the tests run on. Alpine is a few tens of MB smaller; override
# NODE_IMAGE to try it. The Node major follows package.json's engines (what the tests run on).
ARG NODE_IMAGE=node:20-bookworm-slim

# Production dependencies only, straight from the lock file.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

# Compile. .dockerignore keeps tests, e2e/, bench/ and scripts/ out of the context, so dist/
# holds only what `node bin/sidecache` loads.
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN node_modules/.bin/tsc -p tsconfig.json

FROM ${NODE_IMAGE}
WORKDIR /app
# Files stay owned by root: the process cannot rewrite its own code.
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY bin/ ./bin/
COPY package.json ./
# Inside a container the listeners must take connections from outside it; the admin listener's
# own default (127.0.0.1) would hide /healthz and /metrics from probes and scrapers.
ENV SIDECACHE_PG_LISTEN=0.0.0.0:5432 \
    SIDECACHE_MYSQL_LISTEN=0.0.0.0:3306 \
    SIDECACHE_ADMIN_LISTEN=0.0.0.0:9180
EXPOSE 5432 3306 9180
# The base image's `node` user, by number so that Kubernetes' runAsNonRoot can verify it.
USER 1000:1000
# Slim images have no curl: Node's own fetch asks /healthz on the port SIDECACHE_ADMIN_LISTEN names.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "const port = (process.env.SIDECACHE_ADMIN_LISTEN || '').split(':').pop() || '9180'; fetch('http://127.0.0.1:' + port + '/healthz', { signal: AbortSignal.timeout(2000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# sidecache handles SIGTERM itself (stop accepting, drain busy sessions up to 10 s, exit 0), so node
# can run as PID 1 without an init; it starts no child processes, so there are no zombies to reap.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "bin/sidecache"]
