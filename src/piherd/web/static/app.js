// piherd dashboard: polls /api/state every 2 s and redraws; buttons POST to the app.
// Text is always set with textContent (never innerHTML): node names and reasons are data.
"use strict";

const TOKEN = new URLSearchParams(window.location.search).get("token");
const POLL_MS = 2000;
const SVG_NS = "http://www.w3.org/2000/svg";

function headers(json) {
  const h = {};
  if (TOKEN) h["Authorization"] = "Bearer " + TOKEN;
  if (json) h["Content-Type"] = "application/json";
  return h;
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}

function sparkline(cls, values) {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("class", cls);
  svg.setAttribute("viewBox", "0 0 100 28");
  svg.setAttribute("preserveAspectRatio", "none");
  const pts = values.map((v, i) => [i, v]).filter((p) => p[1] !== null);
  if (pts.length > 1) {
    const ys = pts.map((p) => p[1]);
    const lo = Math.min(...ys), hi = Math.max(...ys);
    const span = hi - lo || 1;
    const n = Math.max(values.length - 1, 1);
    const line = document.createElementNS(SVG_NS, "polyline");
    line.setAttribute("points", pts.map((p) =>
      (100 * p[0] / n).toFixed(1) + "," + (26 - 24 * (p[1] - lo) / span).toFixed(1)).join(" "));
    svg.appendChild(line);
  }
  return svg;
}

async function act(node, action) {
  // Draining stops new jobs on the node: ask first (resume is harmless, no question).
  if (action === "drain" && !window.confirm("Drain " + node + " in Slurm? Running jobs "
      + "finish; no new job starts there until it is resumed.")) {
    return;
  }
  const body = action === "drain" ? { reason: "drained from the dashboard" } : {};
  try {
    const r = await fetch("api/nodes/" + encodeURIComponent(node) + "/" + action,
      { method: "POST", headers: headers(true), body: JSON.stringify(body) });
    if (!r.ok) {
      const data = await r.json().catch(() => ({}));
      showActionError(action + " " + node + ": " + (data.error || "HTTP " + r.status));
    }
  } catch (e) {
    showActionError(action + " " + node + ": " + e);
  }
  setTimeout(refresh, 300);
}

// A failed button stays on screen until dismissed: the refresh every 2 s redraws the
// state line (#error), never this one.
function showActionError(text) {
  document.getElementById("action-error-text").textContent = text;
  document.getElementById("action-error").hidden = false;
}

function dismissActionError() {
  document.getElementById("action-error").hidden = true;
  document.getElementById("action-error-text").textContent = "";
}

function showError(text) {
  const p = document.getElementById("error");
  p.hidden = !text;
  p.textContent = text || "";
}

function nodeCard(n, hist) {
  const flags = n.slurm ? n.slurm.flags : [];
  const card = el("div", "node level-" + n.level
    + (flags.includes("DRAIN") ? " drained" : "")
    + (n.slurm && n.slurm.base_state === "down" ? " down" : "")
    + (n.reachable ? "" : " unreachable"));
  card.id = "node-" + n.node;
  card.dataset.node = n.node;
  card.dataset.level = n.level;
  card.dataset.slurm = n.slurm ? n.slurm.state : "";
  const head = el("div", "head");
  head.appendChild(el("span", "name", n.node));
  head.appendChild(el("span", "role", n.role + (n.reachable ? "" : " · unreachable")));
  card.appendChild(head);
  if (n.slurm) {
    const text = "slurm: " + n.slurm.state + (n.slurm.reason ? " (" + n.slurm.reason + ")" : "");
    card.appendChild(el("div", "slurm", text));
  }
  if (n.reboot_needed && n.reboot_needed.length) {
    card.appendChild(el("div", "reboot", "reboot needed"));
  }
  const load = n.load ? n.load.map((v) => v.toFixed(2)).join(" ") : "-";
  const temp = n.temperature_c === null ? "-" : n.temperature_c.toFixed(1) + " °C";
  card.appendChild(el("div", "figures", "load " + load + " · " + temp
    + " · " + (n.throttling ? n.throttling.text : "-")));
  const reasons = n.critical
    .map((r) => [r === "unreachable" && n.error ? "unreachable: " + n.error : r, "critical"])
    .concat(n.warnings.map((r) => [r, "warn"]));
  if (reasons.length) {
    const ul = el("ul", "reasons");
    reasons.forEach(([text, level]) => ul.appendChild(el("li", level, text)));
    card.appendChild(ul);
  }
  if (hist) {
    card.appendChild(el("div", "spark-label", "load, last hour"));
    card.appendChild(sparkline("load", hist.load1));
    card.appendChild(el("div", "spark-label", "temperature, last hour"));
    card.appendChild(sparkline("temp", hist.temp_c));
  }
  if (n.slurm) {
    const buttons = el("div", "buttons");
    const drain = el("button", "drain", "drain");
    drain.addEventListener("click", () => act(n.node, "drain"));
    const resume = el("button", "resume", "resume");
    resume.addEventListener("click", () => act(n.node, "resume"));
    buttons.appendChild(drain);
    buttons.appendChild(resume);
    card.appendChild(buttons);
  }
  return card;
}

function render(state) {
  const counts = { ok: 0, warn: 0, critical: 0 };
  const grid = document.getElementById("grid");
  const cards = state.nodes.map((n) => {
    counts[n.level] += 1;
    return nodeCard(n, state.history[n.node]);
  });
  grid.replaceChildren(...cards);
  const many = state.nodes.length === 1 ? " node: " : " nodes: ";
  document.getElementById("summary").textContent = state.nodes.length + many
    + counts.ok + " ok, " + counts.warn + " warn, " + counts.critical + " critical";
  document.getElementById("updated").textContent =
    "updated " + new Date(state.time * 1000).toLocaleTimeString();
  const body = document.querySelector("#queue tbody");
  const rows = state.jobs.map((j) => {
    const tr = el("tr");
    [j.job_id, j.name, j.user, j.state, j.time, j.nodes, j.nodelist || j.reason]
      .forEach((v) => tr.appendChild(el("td", null, String(v))));
    return tr;
  });
  if (!rows.length) {
    const tr = el("tr");
    const td = el("td", null, "no jobs");
    td.colSpan = 7;
    tr.appendChild(td);
    rows.push(tr);
  }
  body.replaceChildren(...rows);
  showError(state.error || state.slurm_error || "");
  document.body.dataset.ready = "1";
}

async function refresh() {
  try {
    const r = await fetch("api/state", { headers: headers(false) });
    if (!r.ok) { showError("state: HTTP " + r.status); return; }
    const state = await r.json();
    if (state.ready) render(state);
  } catch (e) {
    showError("cannot reach the dashboard: " + e);
  }
}

document.getElementById("action-error-dismiss").addEventListener("click", dismissActionError);
refresh();
setInterval(refresh, POLL_MS);
