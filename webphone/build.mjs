// Builds the webphone into ../switch/web/static/phone/ (served at /phone/):
// src/main.js and its imports (JsSIP) bundled into one script, src/style.css
// into one stylesheet, both named by content hash so that browsers may cache
// them for ever, and index.html pointing at them.
//
// esbuild alone, rather than a dev-server toolchain: one dependency whose
// lock file installs on every platform (`npm ci`).

import { build } from "esbuild";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "switch", "web", "static", "phone");
const assets = join(out, "assets");

rmSync(out, { recursive: true, force: true });
mkdirSync(assets, { recursive: true });

const result = await build({
  entryPoints: { phone: join(here, "src", "main.js"), style: join(here, "src", "style.css") },
  bundle: true,
  minify: true,
  format: "esm",
  target: ["chrome100", "firefox100", "safari15", "edge100"],
  outdir: assets,
  entryNames: "[name]-[hash]",
  metafile: true,
  legalComments: "linked", // JsSIP's licence stays beside the bundle
  logLevel: "warning",
});

const built = {};
for (const [file, meta] of Object.entries(result.metafile.outputs)) {
  if (meta.entryPoint) built[basename(meta.entryPoint)] = basename(file);
}
const page = readFileSync(join(here, "index.html"), "utf8")
  .replace('href="/src/style.css"', `href="/phone/assets/${built["style.css"]}"`)
  .replace('src="/src/main.js"', `src="/phone/assets/${built["main.js"]}"`);
if (page.includes("/src/")) throw new Error("index.html still names a source file: update build.mjs");
writeFileSync(join(out, "index.html"), page);
console.log(`webphone built: ${Object.values(built).join(", ")} in ${out}`);
