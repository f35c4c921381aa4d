// Drover dashboard. Hand-written, no dependencies. Untrusted text (cluster, node
// and VM names) only ever reaches the page through textContent and setAttribute.
"use strict";

(function () {
  var SVGNS = "http://www.w3.org/2000/svg";

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    setAttrs(e, attrs);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function svg(tag, attrs, text) {
    var e = document.createElementNS(SVGNS, tag);
    setAttrs(e, attrs);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function setAttrs(e, attrs) {
    if (!attrs) return;
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, String(attrs[k])); });
  }
  function ms(t) { return t ? Date.parse(t) : 0; }
  function human(s) {
    s = Math.max(0, Math.round(s));
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s";
    return Math.floor(s / 3600) + "h" + String(Math.floor(s / 60) % 60).padStart(2, "0") + "m";
  }
  function clock(t) { return new Date(t).toISOString().substring(11, 19); }

  // Confirmation: a form with data-confirm asks first, in a dialog of the page.
  function setupConfirm() {
    var dlg = document.getElementById("confirm");
    document.querySelectorAll("form[data-confirm]").forEach(function (f) {
      f.addEventListener("submit", function (ev) {
        if (!dlg || typeof dlg.showModal !== "function") return; // the browser's own submit
        ev.preventDefault();
        document.getElementById("confirm-text").textContent = f.getAttribute("data-confirm");
        dlg.returnValue = "";
        dlg.onclose = function () {
          if (dlg.returnValue === "ok") f.submit();
        };
        dlg.showModal();
      });
    });
  }

  var TERMINAL_RUN = { succeeded: 1, partially_failed: 1, failed: 1, stopped: 1 };
  var TERMINAL_NODE = { done: 1, failed: 1, skipped: 1 };

  function RunPage(root) {
    this.root = root;
    this.id = root.getAttribute("data-run");
    this.st = null;
    this.migs = {};
    this.lastEvent = 0;
    this.pending = false;
    this.es = null;
    this.broken = false;
  }

  RunPage.prototype.url = function (suffix) {
    return "/runs/" + encodeURIComponent(this.id) + suffix;
  };

  RunPage.prototype.load = function () {
    var self = this;
    return fetch(this.url("/state"), { credentials: "same-origin", cache: "no-store" }).then(function (r) {
      if (r.status === 401) { window.location.assign("/signin?next=" + encodeURIComponent(window.location.pathname)); return null; }
      if (!r.ok) throw new Error("state: HTTP " + r.status);
      return r.json();
    }).then(function (st) {
      if (!st) return;
      st.fetchedAt = Date.now();
      self.st = st;
      self.lastEvent = Math.max(self.lastEvent, ms(st.now));
      if (TERMINAL_RUN[st.run.state]) self.migs = {};
      self.renderLog();
      self.schedule();
    });
  };

  // now is the cluster's time now: the state's clock moved on at its rate, never
  // before the last event seen; a finished run stops at its last moment.
  RunPage.prototype.now = function () {
    var st = this.st;
    if (TERMINAL_RUN[st.run.state]) return ms(st.now);
    var est = ms(st.now) + (Date.now() - st.fetchedAt) * (st.rate || 1);
    return Math.max(est, this.lastEvent);
  };

  RunPage.prototype.connect = function () {
    var self = this;
    if (this.es) this.es.close();
    var es = new EventSource(this.url("/events"));
    this.es = es;
    var conn = document.getElementById("conn");
    es.onopen = function () {
      conn.textContent = "live";
      conn.className = "conn live";
      if (self.broken) { self.broken = false; self.load(); }
    };
    es.onerror = function () {
      self.broken = true;
      if (self.st && TERMINAL_RUN[self.st.run.state]) { es.close(); conn.textContent = "finished"; conn.className = "conn"; return; }
      conn.textContent = "reconnecting…";
      conn.className = "conn down";
      if (es.readyState === EventSource.CLOSED) {
        setTimeout(function () { if (self.es === es) self.connect(); }, 2000);
      }
    };
    ["run_started", "run_resumed", "run_finished", "node_state", "migration_started", "migration_progress",
      "migration_done", "migration_failed", "migration_aborted", "updates_installed", "warning", "approval_needed", "waiting", "lagged"].forEach(function (k) {
      es.addEventListener(k, function (m) {
        var ev;
        try { ev = JSON.parse(m.data); } catch (e) { return; }
        self.apply(k, ev);
      });
    });
  };

  RunPage.prototype.apply = function (kind, ev) {
    var st = this.st;
    if (!st) return;
    var t = ms(ev.time) || this.now();
    if (kind !== "run_finished") this.lastEvent = Math.max(this.lastEvent, t);
    var text = null, level = "info";
    switch (kind) {
      case "node_state": {
        var lane = null;
        st.nodes.forEach(function (n) { if (n.name === ev.node) lane = n; });
        if (!lane) { lane = { name: ev.node, state: "queued", segments: [] }; st.nodes.push(lane); }
        var last = lane.segments[lane.segments.length - 1];
        if (last && !last.end) last.end = ev.time;
        lane.state = ev.state;
        if (TERMINAL_NODE[ev.state]) lane.end = ev.time;
        else lane.segments.push({ state: ev.state, start: ev.time });
        if (ev.message) lane.failure = ev.message;
        text = ev.node + ": " + ev.state.replace("_", " ") + (ev.message ? ": " + ev.message : "");
        if (ev.state === "failed") level = "error";
        break;
      }
      case "migration_started":
      case "migration_progress": {
        var p = ev.progress || {};
        var m = this.migs[ev.vm] || { vm: ev.vm, from: ev.from || p.from, to: ev.to || p.to, started: Date.now() };
        m.transferred = p.transferred_mib || 0;
        m.remaining = p.remaining_mib || 0;
        m.phase = p.phase || "setup";
        m.round = p.round || 0;
        m.elapsed = p.elapsed_seconds || p.elapsed || 0;
        this.migs[ev.vm] = m;
        if (kind === "migration_started") text = "migrating " + ev.vm + " " + (m.from || "") + " → " + (m.to || "");
        break;
      }
      case "migration_done":
        delete this.migs[ev.vm];
        text = "migrated " + ev.vm + " " + (ev.from || "") + " → " + (ev.to || "") + (ev.seconds ? " in " + human(ev.seconds) : "");
        break;
      case "migration_aborted":
        delete this.migs[ev.vm];
        text = "migration of " + ev.vm + " aborted by the run; it stays on " + (ev.from || "its node");
        break;
      case "migration_failed":
        delete this.migs[ev.vm];
        text = "migration of " + ev.vm + " failed" + (ev.message ? ": " + ev.message : "");
        level = "error";
        break;
      case "run_finished":
        st.run.state = ev.state || st.run.state;
        if (ev.message) st.run.error = ev.message;
        this.migs = {};
        text = "run finished: " + st.run.state + (ev.message ? ": " + ev.message : "");
        if (this.es) this.es.close();
        document.getElementById("conn").textContent = "finished";
        document.getElementById("conn").className = "conn";
        this.reload();
        break;
      case "approval_needed":
        st.run.state = "waiting_approval";
        text = "waiting for approval" + (ev.message ? ": " + ev.message : "");
        level = "warn";
        this.reload();
        break;
      case "run_started":
      case "run_resumed":
        st.run.state = "running";
        text = kind.replace("_", " ");
        this.reload();
        break;
      case "lagged":
        text = ev.message;
        level = "warn";
        this.reload();
        break;
      default:
        text = (ev.node ? ev.node + ": " : "") + kind.replace("_", " ") + (ev.message ? ": " + ev.message : "");
        if (kind === "warning") level = "warn";
    }
    if (text) this.addLog(t, level, text);
    this.schedule();
  };

  // reload fetches the state again shortly (executing, approved, final state).
  RunPage.prototype.reload = function () {
    var self = this;
    clearTimeout(this.reloadTimer);
    this.reloadTimer = setTimeout(function () { self.load(); }, 400);
  };

  RunPage.prototype.schedule = function () {
    var self = this;
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(function () { self.pending = false; self.render(); });
  };

  RunPage.prototype.render = function () {
    var st = this.st;
    if (!st) return;
    var stEl = document.getElementById("run-state");
    stEl.textContent = st.run.state;
    stEl.className = "state st-" + st.run.state;
    var terminal = !!TERMINAL_RUN[st.run.state];
    var waiting = st.run.state === "waiting_approval" && !st.run.approved;
    document.getElementById("approval").hidden = !waiting;
    this.show("approve", waiting);
    this.show("resume", !terminal && !st.executing && !waiting);
    this.show("stop", !terminal);
    this.renderLanes();
    this.renderMigrations();
    this.renderETA();
  };

  RunPage.prototype.show = function (action, on) {
    var f = this.root.querySelector('form[data-action="' + action + '"]');
    if (f) f.hidden = !on;
  };

  RunPage.prototype.renderLanes = function () {
    var st = this.st, origin = ms(st.origin), now = this.now();
    var W = 1000, L = 150, R = 12, top = 24, H = 30;
    // The axis holds the run as now estimated; the plan's boxes are cut where a
    // plan far longer than the run leaves it.
    var est = this.estimate(now);
    var span = Math.max(est.elapsed + (TERMINAL_RUN[st.run.state] ? 0 : est.remaining), 60);
    if (est.factor === 1 && !TERMINAL_RUN[st.run.state]) st.plan.forEach(function (p) { span = Math.max(span, p.end_s); });
    span *= 1.03;
    var x = function (tms) { return L + (W - L - R) * Math.max(0, (tms - origin) / 1000) / span; };
    var root = svg("svg", { viewBox: "0 0 " + W + " " + (top + H * st.nodes.length + 8), role: "img" });
    var step = [10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600].find(function (s) { return span / s <= 7; }) || 43200;
    for (var s = 0; s <= span; s += step) {
      var tx = L + (W - L - R) * s / span;
      root.appendChild(svg("line", { x1: tx, x2: tx, y1: 16, y2: top + H * st.nodes.length, "class": "grid" }));
      var tattrs = { x: tx, y: 12, "class": "tick" };
      if (tx > W - 40) tattrs["text-anchor"] = "end";
      root.appendChild(svg("text", tattrs, "+" + human(s)));
    }
    var planOf = {};
    st.plan.forEach(function (p) { planOf[p.node] = p; });
    st.nodes.forEach(function (n, i) {
      var y = top + i * H;
      var g = svg("g", { "class": "lane", "data-node": n.name, "data-state": n.state });
      g.appendChild(svg("title", null, n.name));
      // A long name is cut to its column; the title holds all of it.
      g.appendChild(svg("text", { x: 4, y: y + 12, "class": "label" }, n.name.length > 20 ? n.name.slice(0, 19) + "…" : n.name));
      g.appendChild(svg("text", { x: 4, y: y + 25, "class": "lane-state" }, n.state.replace("_", " ") + (n.failure ? ": " + n.failure : "")));
      var p = planOf[n.name];
      if (p && p.start_s < span) {
        var pend = Math.min(p.end_s, span);
        g.appendChild(svg("rect", { x: L + (W - L - R) * p.start_s / span, y: y + 3, width: Math.max(1, (W - L - R) * (pend - p.start_s) / span), height: H - 8, rx: 3, "class": "plan" }));
      }
      n.segments.forEach(function (seg) {
        var a = ms(seg.start), b = seg.end ? ms(seg.end) : now;
        var r = svg("rect", { x: x(a), y: y + 6, width: Math.max(1.5, x(b) - x(a)), height: H - 14, rx: 2, "class": "seg st-" + seg.state, "data-state": seg.state });
        r.appendChild(svg("title", null, n.name + " " + seg.state.replace("_", " ") + " " + human((b - a) / 1000)));
        g.appendChild(r);
      });
      if (n.end && (n.state === "done" || n.state === "failed")) {
        var ex = x(ms(n.end));
        g.appendChild(svg("circle", { cx: ex, cy: y + H / 2 - 1, r: 5, "class": "st-" + n.state }));
      }
      root.appendChild(g);
    });
    if (!TERMINAL_RUN[st.run.state]) {
      root.appendChild(svg("line", { x1: x(now), x2: x(now), y1: 16, y2: top + H * st.nodes.length, "class": "now" }));
    }
    var box = document.getElementById("lanes");
    box.replaceChildren(root);
  };

  RunPage.prototype.renderMigrations = function () {
    var ul = document.getElementById("migrations");
    var keys = Object.keys(this.migs).sort();
    var self = this;
    var items = keys.map(function (k) {
      var m = self.migs[k];
      var total = m.transferred + m.remaining;
      var pct = total > 0 ? Math.min(100, 100 * m.transferred / total) : 0;
      var rate = m.elapsed > 0 ? m.transferred / m.elapsed : 0;
      var li = el("li", { "class": "migration", "data-vm": m.vm });
      li.appendChild(el("span", { "class": "vm" }, m.vm));
      li.appendChild(el("progress", { max: 100, value: pct.toFixed(1), "aria-label": "progress of " + m.vm }));
      li.appendChild(el("span", { "class": "rate" }, rate > 0 ? Math.round(rate) + " MiB/s" : m.phase));
      li.appendChild(el("span", { "class": "route" }, (m.from || "?") + " → " + (m.to || "?") + " · " + m.phase + (m.round ? " round " + m.round : "") + " · " + Math.round(m.transferred) + " MiB sent, " + Math.round(m.remaining) + " MiB left"));
      return li;
    });
    ul.replaceChildren.apply(ul, items);
    document.getElementById("no-migrations").hidden = items.length > 0;
  };

  // estimate is the run's time so far and the time it still needs: the plan's
  // time for each node not finished, scaled by how the finished nodes compared with
  // their plan (a plan made from defaults can be far off; measured runs refine it).
  RunPage.prototype.estimate = function (now) {
    var st = this.st, origin = ms(st.origin);
    var lanes = {};
    st.nodes.forEach(function (n) { lanes[n.name] = n; });
    var actual = 0, planned = 0, left = 0;
    st.plan.forEach(function (p) {
      var n = lanes[p.node];
      var d = p.end_s - p.start_s;
      if (!n) return;
      if (TERMINAL_NODE[n.state]) {
        if (n.segments.length && n.end) { actual += (ms(n.end) - ms(n.segments[0].start)) / 1000; planned += d; }
        return;
      }
      if (n.segments.length === 0) left += d;
      else left += Math.max(0, d - (now - ms(n.segments[0].start)) / 1000 / (planned > 0 ? actual / planned : 1));
    });
    var factor = planned > 0 && actual > 0 ? actual / planned : 1;
    return { elapsed: Math.max(0, (now - origin) / 1000), remaining: left * factor, factor: factor };
  };

  RunPage.prototype.renderETA = function () {
    var st = this.st, now = this.now();
    var eta = document.getElementById("eta");
    var est = this.estimate(now);
    var elapsed = est.elapsed;
    var plan = st.plan_eta_s;
    var parts = [];
    if (TERMINAL_RUN[st.run.state]) {
      parts.push(["Took ", human(elapsed)]);
      if (plan) parts.push([" · the plan predicted ", human(plan)]);
    } else {
      var remaining = est.remaining;
      parts.push(["Elapsed ", human(elapsed)]);
      parts.push([" · ends in about ", human(remaining)]);
      parts.push([" · run ETA ", human(elapsed + remaining)]);
      if (plan) {
        parts.push([" against the plan's ", human(plan)]);
        var diff = elapsed + remaining - plan;
        parts.push([" (" + (diff >= 0 ? "+" : "−"), human(Math.abs(diff)) + ")"]);
      }
    }
    if (st.run.error) parts.push([" · ", st.run.error]);
    eta.replaceChildren();
    parts.forEach(function (pp) {
      eta.appendChild(document.createTextNode(pp[0]));
      eta.appendChild(el("b", null, pp[1]));
    });
    eta.setAttribute("data-plan-eta", String(plan || 0));
  };

  RunPage.prototype.renderLog = function () {
    var ol = document.getElementById("log");
    ol.replaceChildren();
    var self = this;
    this.st.log.forEach(function (l) { self.addLog(ms(l.at), l.level, l.text, true); });
    ol.scrollTop = ol.scrollHeight;
  };

  RunPage.prototype.addLog = function (t, level, text, bulk) {
    var ol = document.getElementById("log");
    var li = el("li", { "class": level });
    li.appendChild(el("time", null, t ? clock(t) : ""));
    li.appendChild(document.createTextNode(text));
    ol.appendChild(li);
    while (ol.children.length > 500) ol.removeChild(ol.firstChild);
    if (!bulk) ol.scrollTop = ol.scrollHeight;
  };

  RunPage.prototype.start = function () {
    var self = this;
    this.load().then(function () {
      if (!self.st) return;
      if (!TERMINAL_RUN[self.st.run.state]) self.connect();
      else { document.getElementById("conn").textContent = "finished"; }
      self.timer = setInterval(function () {
        if (self.st && !TERMINAL_RUN[self.st.run.state]) self.schedule();
      }, 500);
    }).catch(function (e) {
      var conn = document.getElementById("conn");
      conn.textContent = String(e.message || e);
      conn.className = "conn down";
    });
  };

  document.addEventListener("DOMContentLoaded", function () {
    setupConfirm();
    var root = document.getElementById("run");
    if (root) new RunPage(root).start();
  });
})();
