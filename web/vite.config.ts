import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const root = fileURLToPath(new URL('.', import.meta.url));

/** The page is built into dist/web, which the node serves at `/` (src/http/web-routes.ts). */
export default defineConfig({
  root,
  base: '/',
  publicDir: 'public',
  logLevel: 'warn',
  build: {
    outDir: fileURLToPath(new URL('../dist/web', import.meta.url)),
    emptyOutDir: true,
    assetsDir: 'assets',
    sourcemap: false,
    target: 'es2022',
    // Everything is served by the node: no inlined data: URLs, which the CSP would refuse.
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 1024,
    modulePreload: { polyfill: false },
    rollupOptions: {
      onwarn(warning, warn) {
        // @scure/base places a /* @__PURE__ */ where Rollup cannot use it: harmless, and not ours.
        if (warning.code === 'INVALID_ANNOTATION' && warning.id?.includes('node_modules')) return;
        warn(warning);
      },
    },
  },
  server: {
    // `vite` on its own (npm run web:dev) forwards the API to a node on the default port.
    proxy: {
      '/v1': { target: 'http://127.0.0.1:8402', ws: true },
      '/mint': 'http://127.0.0.1:8402',
    },
  },
});
