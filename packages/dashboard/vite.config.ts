import { defineConfig } from 'vite';

// Plain Preact through esbuild's automatic JSX runtime: no framework plugin needed.
export default defineConfig({
  base: '/',
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022', sourcemap: false, chunkSizeWarningLimit: 600 },
});
