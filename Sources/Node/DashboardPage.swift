/// The dashboard (`GET /`): one page, no external resources (nodes run in closed networks), fed by
/// `GET /events`. Everything a peer or the DA node can influence (peer ids, addresses, error
/// texts) is set with `textContent`, never parsed as HTML.
enum DashboardPage {
    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>evnode</title>
<style>
:root{--bg:#0f1115;--card:#181b22;--fg:#e4e6eb;--dim:#8a91a0;--ok:#5fcf80;--warn:#f0c050;--bad:#ff6b6b;--a:#6aa8ff;--b:#b98cff;--c:#5fcf80;--d:#f0c050}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.4 system-ui,-apple-system,Segoe UI,sans-serif}
header{display:flex;flex-wrap:wrap;gap:.5em 1em;align-items:baseline;padding:.8em 1em;border-bottom:1px solid #262a33}
header h1{font-size:1.1em;margin:0}
main{display:grid;gap:.8em;padding:.8em;grid-template-columns:repeat(auto-fit,minmax(min(100%,22em),1fr))}
section{background:var(--card);border-radius:8px;padding:.8em 1em;min-width:0}
section h2{font-size:.8em;text-transform:uppercase;letter-spacing:.06em;color:var(--dim);margin:0 0 .5em}
.wide{grid-column:1/-1}
.big{font-size:1.6em;font-weight:600}
.dim{color:var(--dim)}
.mono{font-family:ui-monospace,Menlo,Consolas,monospace;word-break:break-all}
.phase-aggregating,.phase-caughtUp{color:var(--ok)}.phase-syncing,.phase-starting{color:var(--warn)}.phase-recovering,.phase-halted{color:var(--bad)}
.bar{height:1.1em;background:#262a33;border-radius:4px;overflow:hidden;margin:.4em 0}
.bar>div{height:100%;width:0;background:var(--a);transition:width .5s}
table{width:100%;border-collapse:collapse;font-size:.9em}
td,th{text-align:left;padding:.25em .4em;border-bottom:1px solid #262a33;vertical-align:top}
th{color:var(--dim);font-weight:500}
dl{display:grid;grid-template-columns:auto 1fr;gap:.2em .8em;margin:0}
dt{color:var(--dim)}dd{margin:0}
svg{width:100%;height:14em;display:block}
.legend span{margin-right:1em;white-space:nowrap}
.legend i{display:inline-block;width:.8em;height:.8em;border-radius:2px;margin-right:.3em;vertical-align:-.05em}
#conn.live{color:var(--ok)}#conn.down{color:var(--bad)}
.ok{color:var(--ok)}.bad{color:var(--bad)}
</style>
</head>
<body>
<header>
  <h1>evnode</h1>
  <span id="chain" class="dim"></span>
  <span id="mode" class="dim"></span>
  <span id="conn" class="down">connecting…</span>
</header>
<main>
  <section id="phase-section">
    <h2>Phase</h2>
    <div id="phase" class="big">—</div>
    <div id="reason" class="dim"></div>
  </section>
  <section id="heights-section">
    <h2>Heights</h2>
    <dl>
      <dt>store</dt><dd id="store-height" class="big">—</dd>
      <dt>finalized</dt><dd id="finalized-height">—</dd>
      <dt>DA head</dt><dd id="da-head">—</dd>
      <dt>peers' max</dt><dd id="p2p-max">—</dd>
      <dt>blocks/s</dt><dd id="blocks-per-second">—</dd>
    </dl>
  </section>
  <section id="catchup-section">
    <h2>Catchup</h2>
    <div id="catchup-state" class="dim">not catching up</div>
    <div class="bar"><div id="catchup-bar"></div></div>
    <div id="catchup-detail" class="dim"></div>
  </section>
  <section id="chart-section" class="wide">
    <h2>Heights over the last minutes</h2>
    <svg id="chart" viewBox="0 0 600 200" preserveAspectRatio="none" role="img" aria-label="heights chart"></svg>
    <div class="legend">
      <span><i style="background:var(--a)"></i>store</span>
      <span><i style="background:var(--c)"></i>finalized</span>
      <span><i style="background:var(--b)"></i>peers' max</span>
      <span><i style="background:var(--d)"></i>DA head (right scale)</span>
      <span id="chart-range" class="dim"></span>
    </div>
  </section>
  <section id="da-section">
    <h2>DA submissions</h2>
    <dl>
      <dt>pending</dt><dd id="da-pending">—</dd>
      <dt>last success</dt><dd id="da-last-success">—</dd>
      <dt>gas price</dt><dd id="da-gas">—</dd>
      <dt>failures</dt><dd id="da-failures">—</dd>
      <dt>last error</dt><dd id="da-error" class="mono">—</dd>
    </dl>
    <table><thead><tr><th>DA height</th><th>status</th><th>blobs</th><th>bytes</th></tr></thead><tbody id="da-recent"></tbody></table>
    <div id="da-visualizer" class="dim"></div>
  </section>
  <section id="peers-section">
    <h2>Peers</h2>
    <div id="peer-count" class="dim"></div>
    <table><thead><tr><th>peer</th><th>proven height</th></tr></thead><tbody id="peers"></tbody></table>
  </section>
  <section id="signer-section">
    <h2>Evidence and signer</h2>
    <dl>
      <dt>double-sign evidence</dt><dd id="evidence">—</dd>
      <dt>signer's mark</dt><dd id="signer-mark">—</dd>
      <dt>proposer</dt><dd id="proposer" class="mono">—</dd>
    </dl>
  </section>
  <section id="ha-section">
    <h2>HA</h2>
    <dl>
      <dt>role</dt><dd id="ha-role">not in an HA group</dd>
      <dt>leader</dt><dd id="ha-leader">—</dd>
      <dt>replicated</dt><dd id="ha-replicated">—</dd>
    </dl>
  </section>
</main>
<script>
"use strict";
const $ = id => document.getElementById(id);
const put = (id, v) => { $(id).textContent = (v === null || v === undefined || v === "") ? "—" : String(v); };
const ago = t => { if (!t) return null; const s = Math.max(0, Date.now() / 1000 - t); return s < 90 ? Math.round(s) + " s ago" : Math.round(s / 60) + " min ago"; };
const dur = s => s === null || s === undefined ? "—" : s < 90 ? Math.round(s) + " s" : s < 5400 ? Math.round(s / 60) + " min" : (s / 3600).toFixed(1) + " h";
let samples = [];
const keep = 300;

function row(tbody, cells) {
  const tr = document.createElement("tr");
  for (const c of cells) { const td = document.createElement("td"); td.textContent = c[0]; if (c[1]) td.className = c[1]; tr.appendChild(td); }
  tbody.appendChild(tr);
}

function chart() {
  const svg = $("chart");
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  if (samples.length < 2) return;
  const W = 600, H = 200, t0 = samples[0].t, t1 = samples[samples.length - 1].t || t0 + 1;
  const left = ["store", "finalized", "p2p_max"];
  let lo = Infinity, hi = -Infinity, dlo = Infinity, dhi = -Infinity;
  for (const s of samples) {
    for (const k of left) { if (k === "p2p_max" && !s[k]) continue; lo = Math.min(lo, s[k]); hi = Math.max(hi, s[k]); }
    dlo = Math.min(dlo, s.da_head); dhi = Math.max(dhi, s.da_head);
  }
  if (hi === lo) hi = lo + 1;
  if (dhi === dlo) dhi = dlo + 1;
  const x = t => (t - t0) / Math.max(1, t1 - t0) * W;
  const line = (key, color, a, b) => {
    const p = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    p.setAttribute("points", samples.filter(s => key !== "p2p_max" || s[key]).map(s => x(s.t).toFixed(1) + "," + (H - 4 - (s[key] - a) / (b - a) * (H - 8)).toFixed(1)).join(" "));
    p.setAttribute("fill", "none"); p.setAttribute("stroke", color); p.setAttribute("stroke-width", "2");
    p.setAttribute("vector-effect", "non-scaling-stroke");
    svg.appendChild(p);
  };
  line("da_head", "var(--d)", dlo, dhi);
  line("finalized", "var(--c)", lo, hi);
  line("p2p_max", "var(--b)", lo, hi);
  line("store", "var(--a)", lo, hi);
  put("chart-range", "blocks " + lo + "–" + hi + " · DA " + dlo + "–" + dhi + " · last " + dur(t1 - t0));
}

function render(s) {
  const st = s.status, h = st.heights, c = st.catchup;
  put("chain", st.chain_id); put("mode", st.mode);
  put("phase", st.phase); $("phase").className = "big phase-" + st.phase;
  put("reason", st.reason || (c.active && c.blocked_by) || "");
  put("store-height", h.store); put("finalized-height", h.finalized); put("da-head", h.da_head); put("p2p-max", h.p2p_max || null);
  put("blocks-per-second", s.blocks_per_second.toFixed(1));
  if (c.active) {
    const pct = c.target > 0 ? Math.min(100, h.store / c.target * 100) : 0;
    $("catchup-bar").style.width = pct.toFixed(1) + "%";
    put("catchup-state", h.store + " of " + c.target + " (" + pct.toFixed(1) + "%)");
    put("catchup-detail", c.blocks_per_second.toFixed(0) + " blocks/s · ETA " + dur(c.eta_seconds) + " · " + (c.blocked_by || "applying"));
  } else {
    $("catchup-bar").style.width = (st.phase === "aggregating" || st.phase === "caughtUp") ? "100%" : "0";
    put("catchup-state", st.phase === "aggregating" ? "caught up; producing" : "not catching up");
    put("catchup-detail", "");
  }
  const da = s.submissions;
  const recent = $("da-recent"); recent.textContent = "";
  if (da) {
    put("da-pending", da.pending_blocks + " blocks · " + da.pending_blobs + " blobs");
    put("da-last-success", da.last_success ? "DA height " + da.last_da_height + ", " + ago(da.last_success) : "none yet");
    put("da-gas", (da.gas_price === null || da.gas_price === undefined ? "estimated by the DA node" : da.gas_price) + " · " + da.fee_escalations + " escalations");
    const f = Object.entries(da.failures).map(([k, v]) => k + " " + v).join(", ");
    put("da-failures", f || "none");
    put("da-error", da.last_error);
    for (const r of da.recent) row(recent, [[r.da_height || "—"], [r.status_code, r.status_code === "Success" ? "ok" : "bad"], [r.num_blobs], [r.blob_size]]);
  } else {
    put("da-pending", st.da ? st.da.pending_blocks : null); put("da-last-success", "this node does not submit to DA");
    put("da-gas", null); put("da-failures", null); put("da-error", st.da && st.da.last_error);
  }
  put("da-visualizer", s.da_visualization ? "" : "DA visualizer off (rpc.enable_da_visualization)");
  if (s.da_visualization && !$("da-visualizer").firstChild) {
    const a = document.createElement("a"); a.href = "/da"; a.textContent = "DA visualizer"; $("da-visualizer").appendChild(a);
  }
  const peers = $("peers"); peers.textContent = "";
  put("peer-count", s.peers.length + " connected");
  for (const p of s.peers) row(peers, [[p.id.slice(0, 12) + "… " + p.address, "mono"], [p.proven_height === null || p.proven_height === undefined ? "unproven" : p.proven_height]]);
  put("evidence", st.evidence); $("evidence").className = st.evidence > 0 ? "bad" : "";
  put("signer-mark", s.signer_mark); put("proposer", st.proposer);
  if (st.ha) { put("ha-role", st.ha.role); put("ha-leader", st.ha.leader); put("ha-replicated", st.ha.last_replicated_height); }
}

function connect() {
  const es = new EventSource("/events");
  es.addEventListener("open", () => { $("conn").textContent = "live"; $("conn").className = "live"; });
  es.addEventListener("error", () => { $("conn").textContent = "reconnecting…"; $("conn").className = "down"; });
  es.addEventListener("history", e => { samples = JSON.parse(e.data); chart(); });
  es.addEventListener("snapshot", e => {
    const s = JSON.parse(e.data), h = s.status.heights;
    samples.push({t: s.time, store: h.store, finalized: h.finalized, da_head: h.da_head, p2p_max: h.p2p_max});
    if (samples.length > keep) samples.splice(0, samples.length - keep);
    render(s); chart();
  });
}
connect();
</script>
</body>
</html>
"""#
}
