# System Access Token server. Node 22 LTS is the supported runtime (oidc-provider 9 needs it).
#   docker build -t sat .
#   docker run -p 3000:3000 -v sat-data:/data sat                      (embedded database in /data)
#   docker run -p 3000:3000 -e DATABASE_URL=postgres://... -e KEY_ENCRYPTION_KEY=... sat   (PostgreSQL; docs/keys.md)
#   (tini is the image's entrypoint; with another image use `docker run --init`)

# --- build: all dependencies, TypeScript -> dist/ --------------------------------------------------
FROM node:22-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# No install scripts: `prepare` would build before the sources are here; the build runs below.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY . .
# The console's static files are served from the package root; the directory is created if absent so
# that the runtime stage's COPY below never fails.
RUN npm run build && mkdir -p src/console/page

# --- runtime: production dependencies, compiled code, static files; no compiler, no tests ----------
FROM node:22-bookworm-slim AS runtime
ENV NODE_ENV=production \
    DATA_DIR=/data \
    PORT=3000
WORKDIR /app
# tini as PID 1: forwards SIGTERM/SIGINT to node and reaps zombies (docs/operations.md). The embedded database's
# lock is a kernel advisory lock, so a killed container starts again whatever PID node had.
RUN apt-get update && apt-get install -y --no-install-recommends tini && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` runs tsc, which is a dev dependency and not installed here.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist/src ./dist/src
COPY --from=build /app/dist/migrations ./dist/migrations
COPY --from=build /app/src/console/page ./src/console/page
COPY config ./config
# The embedded database, its lock and the CLI's control socket live in DATA_DIR: owned by the
# unprivileged user the server runs as (the `node` user of the official image, uid 1000).
RUN mkdir -p /data && chown node:node /data
VOLUME ["/data"]
USER node
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# --max-semi-space-size=4 (a smaller young generation) and --heap-growing-percent=100 (the old generation grows by at
# most 2x before a full collection) keep peak RSS well under 200 MB at full load (README "Performance").
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "--max-semi-space-size=4", "--heap-growing-percent=100", "dist/src/cli/index.js", "serve"]
