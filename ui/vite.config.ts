import { defineConfig } from "vitest/config";

export default defineConfig({
  // Tauri serves the build from its own protocol: relative asset paths work there and in
  // a plain browser alike.
  base: "./",
  clearScreen: false,
  server: { port: 5173, strictPort: true },
  build: { outDir: "dist", emptyOutDir: true, target: "safari15", sourcemap: false },
  test: { environment: "happy-dom", include: ["test/**/*.test.ts"] },
});
