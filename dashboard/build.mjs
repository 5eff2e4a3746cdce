// build.mjs - makes the dashboard's static files.
//
//   node build.mjs [--modules DIR] [--out DIR]
//
// --modules: the node_modules directory of `npm ci` (default ./node_modules);
// --out: where the page goes (default ./dist). The output is three files:
//   index.html  the page, with style.css inlined (Mosquitto's http_dir sends
//               no Content-Type, which a browser tolerates for an HTML page and
//               a classic script but not for a stylesheet in every case) and a
//               Content-Security-Policy that allows exactly that inline style
//   app.js      src/app.js and its imports, the mqtt package's browser build
//               included, bundled by esbuild into one classic script (module
//               scripts are refused without a JavaScript Content-Type)
//   app.js.map  its source map
// Nothing is fetched at run time: the page works with no internet.

import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));

function usage(message) {
    process.stderr.write(`build.mjs: ${message}\nusage: node build.mjs [--modules DIR] [--out DIR]\n`);
    process.exit(2);
}

function parseArgs(argv) {
    const args = { modules: path.join(here, "node_modules"), out: path.join(here, "dist") };
    for (let i = 0; i < argv.length; i += 2) {
        const value = argv[i + 1];
        if (value === undefined)
            usage(`${argv[i]} wants a value`);
        if (argv[i] === "--modules")
            args.modules = path.resolve(value);
        else if (argv[i] === "--out")
            args.out = path.resolve(value);
        else
            usage(`unknown argument ${argv[i]}`);
    }
    return args;
}

function inlineStyle(html, css) {
    const link = '<link rel="stylesheet" href="style.css">';
    if (!html.includes(link))
        throw new Error(`src/index.html has no ${link}`);
    if (/<\/style/i.test(css))
        throw new Error("src/style.css contains '</style'");
    const hash = createHash("sha256").update(css, "utf8").digest("base64");
    const page = html.replace(link, () => `<style>${css}</style>`);
    const csp = "style-src 'self' 'unsafe-inline'";
    if (!page.includes(csp))
        throw new Error(`src/index.html's Content-Security-Policy has no "${csp}"`);
    // only this stylesheet, not any inline style
    return page.replace(csp, () => `style-src 'self' 'sha256-${hash}'`);
}

async function main() {
    const args = parseArgs(process.argv.slice(2));
    const require = createRequire(path.join(args.modules, "_resolve.js"));
    let esbuild;
    try {
        esbuild = require("esbuild");
    } catch (e) {
        usage(`esbuild not found in ${args.modules} (run npm ci first): ${e.message}`);
    }
    const mqttVersion = require("mqtt/package.json").version;

    rmSync(args.out, { recursive: true, force: true });
    mkdirSync(args.out, { recursive: true });
    const result = await esbuild.build({
        entryPoints: [path.join(here, "src", "app.js")],
        outfile: path.join(args.out, "app.js"),
        bundle: true,
        format: "iife",
        platform: "browser",
        target: ["es2020"],
        minify: true,
        sourcemap: "linked",
        legalComments: "eof",
        nodePaths: [args.modules],
        banner: { js: `/* bodycam dashboard; mqtt ${mqttVersion} */` },
        logLevel: "warning",
    });
    if (result.errors.length > 0)
        throw new Error("esbuild failed");

    const html = readFileSync(path.join(here, "src", "index.html"), "utf8");
    const css = readFileSync(path.join(here, "src", "style.css"), "utf8");
    writeFileSync(path.join(args.out, "index.html"), inlineStyle(html, css));
    process.stdout.write(`dashboard built in ${args.out} (mqtt ${mqttVersion})\n`);
}

main().catch((e) => {
    process.stderr.write(`build.mjs: ${e.message}\n`);
    process.exit(1);
});
