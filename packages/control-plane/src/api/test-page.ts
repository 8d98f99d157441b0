// GET /test: one self-contained HTML page (no build, no external files) for trying the native API
// from a browser: type an API key, then create, pause, resume, destroy and exec in capsules, and
// create, list and delete snapshots. Everything it does is plain fetch() against /v1.
import type { FastifyInstance } from 'fastify';

export const TEST_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Wrenn API test page</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; max-width: 72rem; color: #222; }
  h1 { font-size: 1.3rem; } h2 { font-size: 1.05rem; margin-top: 1.6rem; border-bottom: 1px solid #ddd; }
  input, select, button { font: inherit; padding: .25rem .4rem; margin: .15rem; }
  input[type=number] { width: 6rem; }
  table { border-collapse: collapse; width: 100%; margin-top: .5rem; }
  td, th { border-bottom: 1px solid #eee; padding: .3rem; text-align: left; vertical-align: top; }
  code, pre { font-family: ui-monospace, monospace; font-size: 12.5px; }
  pre { background: #f6f6f6; padding: .6rem; white-space: pre-wrap; word-break: break-all; max-height: 22rem; overflow: auto; }
  .state-running { color: #080; } .state-paused, .state-hibernated { color: #a60; } .state-error { color: #b00; }
  #status { min-height: 1.4em; } .err { color: #b00; } .ok { color: #080; }
</style>
</head>
<body>
<h1>Wrenn API test page</h1>
<p>Talks to <code>/v1</code> of this control plane with your API key (kept in this browser's localStorage only).</p>
<div>
  <label>API key <input id="key" type="password" size="44" placeholder="wrn_..." autocomplete="off"></label>
  <button id="save">Use key</button>
  <span id="status"></span>
</div>

<h2>New capsule</h2>
<div>
  <label>template <input id="template" value="minimal" size="14"></label>
  <label>vCPUs <input id="vcpus" type="number" min="1" max="8" value="1"></label>
  <label>memory MiB <input id="memory" type="number" min="64" value="512"></label>
  <label>timeout s <input id="timeout" type="number" min="0" value="300"></label>
  <label>metadata <input id="metadata" placeholder="key=value,key2=value2" size="22"></label>
  <button id="create">Create</button>
</div>

<h2>Capsules <button id="refresh">Refresh</button></h2>
<table><thead><tr><th>id</th><th>template</th><th>state</th><th>shape</th><th>expires</th><th>actions</th></tr></thead>
<tbody id="capsules"></tbody></table>

<h2>Exec</h2>
<div>
  <label>capsule <select id="execCapsule"></select></label>
  <input id="cmd" size="50" value="uname -a; id; ls /" placeholder="shell command">
  <button id="exec">Run</button>
</div>
<pre id="execOut">(output appears here)</pre>

<h2>Snapshots</h2>
<div>
  <label>capsule <select id="snapCapsule"></select></label>
  <label>name <input id="snapName" placeholder="my-snapshot" size="20"></label>
  <button id="snap">Create snapshot</button>
  <button id="snapRefresh">Refresh</button>
</div>
<table><thead><tr><th>name</th><th>id</th><th>parent</th><th>size</th><th>created</th><th></th></tr></thead>
<tbody id="snapshots"></tbody></table>

<script>
"use strict";
const $ = (id) => document.getElementById(id);
let apiKey = localStorage.getItem("wrennApiKey") || "";
$("key").value = apiKey;

function status(text, ok) {
  const s = $("status");
  s.textContent = text;
  s.className = ok ? "ok" : "err";
}

async function api(method, path, body) {
  if (!apiKey) throw new Error("enter an API key first");
  const init = { method, headers: { "X-API-Key": apiKey } };
  if (body !== undefined) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
  const res = await fetch("/v1" + path, init);
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!res.ok) {
    const msg = data && data.error ? data.error.code + ": " + data.error.message : res.status + " " + text;
    throw new Error(method + " " + path + " -> " + msg);
  }
  return data;
}

async function run(label, fn) {
  status(label + "...", true);
  try { await fn(); status(label + ": done", true); }
  catch (e) { status(e.message, false); }
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}
function btn(text, onclick) { const b = el("button", text); b.onclick = onclick; return b; }

function fillSelect(sel, capsules) {
  const keep = sel.value;
  sel.replaceChildren(...capsules.filter((c) => c.state === "running" || c.state === "paused")
    .map((c) => { const o = el("option", c.id + " (" + c.state + ")"); o.value = c.id; return o; }));
  if ([...sel.options].some((o) => o.value === keep)) sel.value = keep;
}

async function loadCapsules() {
  const { capsules } = await api("GET", "/capsules?limit=100");
  const rows = capsules.map((c) => {
    const tr = el("tr");
    tr.append(el("td", c.id), el("td", c.template), el("td", c.state, "state-" + c.state),
      el("td", c.vcpus + " vCPU / " + c.memory_mb + " MiB"), el("td", c.expires_at || "never"));
    const actions = el("td");
    if (c.state === "running") {
      actions.append(btn("Pause", () => run("pause " + c.id, async () => { await api("POST", "/capsules/" + c.id + "/pause", { mode: "freeze" }); await loadCapsules(); })));
      actions.append(btn("Hibernate", () => run("hibernate " + c.id, async () => { await api("POST", "/capsules/" + c.id + "/pause", { mode: "hibernate" }); await loadCapsules(); })));
      actions.append(btn("Ping", () => run("ping " + c.id, async () => { await api("POST", "/capsules/" + c.id + "/ping"); await loadCapsules(); })));
    }
    if (c.state === "paused" || c.state === "hibernated") {
      actions.append(btn("Resume", () => run("resume " + c.id, async () => { await api("POST", "/capsules/" + c.id + "/resume", {}); await loadCapsules(); })));
    }
    actions.append(btn("Destroy", () => run("destroy " + c.id, async () => { await api("DELETE", "/capsules/" + c.id); await loadCapsules(); })));
    tr.append(actions);
    return tr;
  });
  $("capsules").replaceChildren(...rows);
  fillSelect($("execCapsule"), capsules);
  fillSelect($("snapCapsule"), capsules);
}

async function loadSnapshots() {
  const { snapshots } = await api("GET", "/snapshots");
  $("snapshots").replaceChildren(...snapshots.map((s) => {
    const tr = el("tr");
    tr.append(el("td", s.name), el("td", s.id), el("td", s.parent || ""), el("td", String(s.size_bytes)), el("td", s.created_at));
    const td = el("td");
    td.append(btn("Use as template", () => { $("template").value = s.name; }));
    td.append(btn("Delete", () => run("delete snapshot " + s.name, async () => { await api("DELETE", "/snapshots/" + encodeURIComponent(s.name)); await loadSnapshots(); })));
    tr.append(td);
    return tr;
  }));
}

function parseMetadata(text) {
  const out = {};
  for (const part of text.split(",").map((s) => s.trim()).filter(Boolean)) {
    const i = part.indexOf("=");
    if (i <= 0) throw new Error("metadata must be key=value pairs separated by commas");
    out[part.slice(0, i)] = part.slice(i + 1);
  }
  return out;
}

$("save").onclick = () => run("check key", async () => {
  apiKey = $("key").value.trim();
  localStorage.setItem("wrennApiKey", apiKey);
  await loadCapsules();
  await loadSnapshots();
});
$("refresh").onclick = () => run("refresh", loadCapsules);
$("snapRefresh").onclick = () => run("refresh snapshots", loadSnapshots);
$("create").onclick = () => run("create capsule", async () => {
  const body = {
    template: $("template").value.trim() || "minimal",
    vcpus: Number($("vcpus").value),
    memory_mb: Number($("memory").value),
    timeout_sec: Number($("timeout").value),
    metadata: parseMetadata($("metadata").value),
  };
  const c = await api("POST", "/capsules", body);
  status("created " + c.id, true);
  await loadCapsules();
});
$("exec").onclick = () => run("exec", async () => {
  const id = $("execCapsule").value;
  if (!id) throw new Error("pick a running capsule");
  const r = await api("POST", "/capsules/" + id + "/exec", { cmd: $("cmd").value });
  $("execOut").textContent = "exit code " + r.exit_code + (r.error ? " (" + r.error + ")" : "") +
    "\\n--- stdout ---\\n" + r.stdout + "\\n--- stderr ---\\n" + r.stderr;
});
$("snap").onclick = () => run("create snapshot", async () => {
  const capsule_id = $("snapCapsule").value;
  if (!capsule_id) throw new Error("pick a running or paused capsule");
  await api("POST", "/snapshots", { capsule_id, name: $("snapName").value.trim() });
  await loadSnapshots();
});
if (apiKey) $("save").click();
</script>
</body>
</html>
`;

export function registerTestPage(app: FastifyInstance): void {
  app.get('/test', { schema: { hide: true } }, async (_req, reply) =>
    reply
      .type('text/html; charset=utf-8')
      // The page runs only its own inline script and talks only to this origin.
      .header(
        'content-security-policy',
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
      )
      .send(TEST_PAGE_HTML),
  );
}
