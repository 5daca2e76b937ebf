// Runs firmware test modules on the real MicroPython interpreter (the
// WebAssembly port, npm @micropython/micropython-webassembly-pyscript) and
// prints one JSON object: {"<module>": {"tests": [{"name", "ok", "error"}],
// "error": str|null, "peak_heap": int|null}}.
//
// usage: node run_mpy.mjs <firmware dir> <support dir> <test.py>...
// Each module gets a fresh interpreter: firmware/ds is copied to /lib/ds,
// the support dir's *.py (fwtest.py) to /lib, the module itself to /lib.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";

const [firmwareDir, supportDir, ...modules] = process.argv.slice(2);
const HEAP = Number(process.env.DS_MPY_HEAP || 1024 * 1024);

function copyTree(FS, src, dst) {
  try { FS.mkdir(dst); } catch (e) { /* exists */ }
  for (const name of readdirSync(src)) {
    if (name === "__pycache__") continue;
    const p = join(src, name);
    if (statSync(p).isDirectory()) copyTree(FS, p, `${dst}/${name}`);
    else if (name.endsWith(".py")) FS.writeFile(`${dst}/${name}`, readFileSync(p));
  }
}

const DRIVER = `
import sys, json, gc, io
import __MOD__ as _m
_res = []
for _n in sorted(dir(_m)):
    _f = getattr(_m, _n)
    if not _n.startswith("test_") or not callable(_f):
        continue
    gc.collect()
    try:
        _f()
        _res.append({"name": _n, "ok": True, "error": None})
    except BaseException as _e:
        _s = io.StringIO()
        sys.print_exception(_e, _s)
        _res.append({"name": _n, "ok": False, "error": _s.getvalue()})
print("@@DSRESULT@@" + json.dumps({"impl": sys.implementation.name, "tests": _res}))
`;

const report = {};
for (const path of modules) {
  const mod = basename(path, ".py");
  const out = [];
  const entry = { tests: [], error: null };
  try {
    const mp = await loadMicroPython({
      heapsize: HEAP,
      stdout: (line) => out.push(line),
      stderr: (line) => out.push(line),
      linebuffer: true,
    });
    try { mp.FS.mkdir("/lib"); } catch (e) { /* exists */ }
    copyTree(mp.FS, join(firmwareDir, "ds"), "/lib/ds");
    for (const name of readdirSync(supportDir)) {
      if (name.endsWith(".py") && !name.startsWith("test_") && name !== "conftest.py") {
        mp.FS.writeFile(`/lib/${name}`, readFileSync(join(supportDir, name)));
      }
    }
    mp.FS.writeFile(`/lib/${mod}.py`, readFileSync(path));
    mp.runPython(DRIVER.replace("__MOD__", mod));
  } catch (e) {
    entry.error = String(e);
  }
  const line = out.find((l) => l.startsWith("@@DSRESULT@@"));
  if (line) {
    const parsed = JSON.parse(line.slice("@@DSRESULT@@".length));
    entry.impl = parsed.impl;
    entry.tests = parsed.tests;
  }
  entry.output = out.filter((l) => !l.startsWith("@@DSRESULT@@")).join("\n").slice(-4000);
  report[mod] = entry;
}
process.stdout.write(JSON.stringify(report) + "\n");
