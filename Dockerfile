# OpenEKM's four functions (keyAdmin, encrypt, decrypt, healthCheck) behind one port, for Cloud Run or
# Kubernetes: docs/container.md. No Firestore emulator and no reference EKM: configure a real Firestore database
# and your EKM endpoints through the environment (docs/configuration.md).

# Build: the TypeScript compiler is a development dependency, needed only here.
FROM node:20-alpine AS build
WORKDIR /app
COPY package.json package-lock.json ./
# No install scripts: the gateway needs no native build (pkcs11js is the reference EKM's, not the gateway's).
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY functions ./functions
COPY shared ./shared
COPY reference-ekm ./reference-ekm
COPY scripts ./scripts
RUN npm run build

# Run: production dependencies and the compiled gateway only, as an unprivileged user.
FROM node:20-alpine
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist/functions ./dist/functions
COPY --from=build /app/dist/shared ./dist/shared
USER node
# Cloud Run sets PORT; elsewhere it defaults to 8080.
ENV PORT=8080
EXPOSE 8080
CMD ["node", "--enable-source-maps", "dist/functions/server.js"]
