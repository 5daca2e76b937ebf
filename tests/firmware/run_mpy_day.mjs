// Runs one simulated node day (tests/firmware/memday.py) on the real
// MicroPython interpreter (npm @micropython/micropython-webassembly-pyscript)
// and prints its "@@DSMEM@@{...}" result line.
//
// usage: node --expose-gc run_mpy_day.mjs <lib dir> <kind> <hours> [<wakes per tick> [<seed>]]
// <lib dir> holds what a board would import: ds/**/*.mpy from the board bundle
// (plus the fakes, ds/hal_cpython.mpy) and memday.mpy; it is copied to /lib.
//
// Heap: this build grows its heap on demand (split heap), so `heapsize` is
// only the first heap area and cannot cap the heap at 96 KiB; its gc.collect()
// is a no-op and it collects only when a call from JavaScript returns. The
// budget is therefore enforced by measuring (see memday.py): JavaScript calls
// memday.tick() over and over, and the heap is collected after each call.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";

const [libDir, kind, hours, wakes, seed] = process.argv.slice(2);
const WAKES = Number(wakes || 1);
const EVERY = 500; // ticks between JavaScript collections
if (!/^[a-z]+$/.test(kind) || !/^[0-9]+$/.test(hours) || !/^[0-9]*$/.test(seed || "")) {
  throw new Error(`bad arguments: ${kind} ${hours}`);
}

// The firmware's code as main.py loads it on a board (ds.app and all it imports),
// plus the drivers ds.sensors.build imports for each kind (memday's water node
// has an A02YYUW).
const DRIVERS = {
  weather: "from ds.drivers import bh1750, bme280, pulse, vane",
  water: "",
  lamp: "from ds.drivers import bh1750, lamp, pzem",
  meter: "from ds.drivers import pzem",
};

function copyTree(FS, src, dst) {
  try { FS.mkdir(dst); } catch (e) { /* exists */ }
  for (const name of readdirSync(src)) {
    const p = join(src, name);
    if (statSync(p).isDirectory()) copyTree(FS, p, `${dst}/${name}`);
    else FS.writeFile(`${dst}/${name}`, readFileSync(p));
  }
}

const out = [];
// A small first heap area: every gc.collect() sweeps all areas.
const mp = await loadMicroPython({
  heapsize: 128 * 1024,
  stdout: (line) => out.push(line),
  stderr: (line) => out.push(line),
  linebuffer: true,
});
copyTree(mp.FS, libDir, "/lib");
let error = null;
let ticks = 0;
try {
  // Separate calls: the heap is collected after each, so the difference is
  // exactly the harness's code (fake board, fake network, this driver).
  // gc.collect() only asks for a collection; it runs when the call returns.
  // ssl (a stand-in: this port has none, tests/firmware/wasm_ssl.py) before the
  // baseline: on a board it is frozen into the firmware image, its code in flash.
  mp.runPython("import gc\nimport asyncio, json, ssl\ngc.collect()\n");
  mp.runPython("_base = gc.mem_alloc()\n");
  // ds.tls too: with broker_tls on (the default) ds.app loads it at boot.
  mp.runPython(`from ds import app, clock, config, node, sensors, spool, tls\n${DRIVERS[kind] || ""}\ngc.collect()\n`);
  mp.runPython("_before = gc.mem_alloc()\n");
  mp.runPython("from ds import hal_cpython\nimport memday\ngc.collect()\n");
  mp.runPython("memday.HARNESS_B = gc.mem_alloc() - _before\nmemday.CODE_B = _before - _base\n");
  mp.runPython(`memday.start("${kind}", ${hours}, ${Number(seed || 1)})\n`);
  // One call into Python per tick: the collector runs each time control returns here.
  const tick = mp.pyimport("memday").tick;
  while (tick(WAKES)) {
    ticks += 1;
    if (ticks % EVERY === 0) {
      // Let JavaScript collect and run its finalizers: the port keeps a Python
      // object alive while a JS proxy of it (e.g. a timer callback) is unfinalized.
      globalThis.gc?.();
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
  mp.runPython("memday.finish()\n");
} catch (e) {
  error = `${e} (after ${ticks} ticks)`;
}
for (const line of out) process.stdout.write(line + "\n");
if (error) {
  process.stdout.write("@@DSERROR@@" + JSON.stringify(error) + "\n");
  process.exitCode = 1;
}
