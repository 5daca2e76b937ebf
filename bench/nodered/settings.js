// Node-RED settings for the DeltaSense ingest benchmark (bench/ingest_e2e.py).
// Headless: no editor and no admin API, listening on 127.0.0.1 only. The bench
// sets the port and the user directory (a temporary one) in the environment.
module.exports = {
    uiHost: "127.0.0.1",
    uiPort: Number(process.env.BENCH_NODERED_PORT || 0),
    userDir: process.env.BENCH_NODERED_USERDIR,
    flowFile: "flows.json",
    credentialSecret: false,
    httpAdminRoot: false,
    disableEditor: true,
    logging: { console: { level: "warn", metrics: false, audit: false } },
    diagnostics: { enabled: false },
    runtimeState: { enabled: false },
    telemetry: { enabled: false },
    externalModules: { autoInstall: false, palette: { allowInstall: false } },
    functionExternalModules: false,
    editorTheme: { tours: false },
};
