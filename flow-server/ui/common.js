// What the dashboard's pages share: elements built, the notice, calls to the API and its
// event streams, the token, and words for times, durations and a run's errors.
"use strict";

(function () {
  const main = document.getElementById("main");
  const notice = document.getElementById("notice");
  const live = document.getElementById("live");
  const tokenInput = document.getElementById("token");
  const TOKEN = "flow.token";
  // What changes as the page is used, read from here by each script when it needs it.
  const common = {
    token: localStorage.getItem(TOKEN) || "",
    // What the page showing now must stop when another replaces it: streams and timers.
    stops: [],
    // Which page is showing: a page whose calls return after another replaced it stops there.
    page: 0,
  };

  // An element: `attrs` are attributes, `class`, `text`, or `on…` handlers.
  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  function say(message, kind) {
    notice.textContent = message;
    notice.className = "notice " + (kind || "error");
    notice.hidden = false;
    clearTimeout(say.timer);
    if (kind === "ok") say.timer = setTimeout(() => (notice.hidden = true), 4000);
  }

  // The API's base: where this script was loaded from, less `ui/common.js`. The server may be
  // mounted under a prefix (nested in another router, or behind a proxy), and the page's
  // own address may or may not end in a slash.
  const base = new URL("..", document.currentScript.src);
  // `path` of the API, written from its root ("/runs"), under that base.
  const under = (path) => new URL(path.replace(/^\//, ""), base).href;

  // Calls the API; resolves to its JSON, or rejects with the server's message.
  async function api(method, path, body) {
    const headers = {};
    if (common.token) headers.Authorization = "Bearer " + common.token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(under(path), { method, headers, body });
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (_) {
      data = null;
    }
    if (!response.ok) {
      const error = new Error((data && data.error) || `${response.status} ${response.statusText}`);
      error.status = response.status;
      throw error;
    }
    return data;
  }

  function failed(error) {
    if (error.status === 401) {
      say("This server needs a token: enter it above (the example server prints it).");
      tokenInput.focus();
    } else {
      say(error.message);
    }
  }

  // Follows an event stream of the server; `on` maps SSE event types to handlers, and
  // `opened` is called each time the stream (re)opens: what happened before then is not in
  // it, so the page reads the state afresh.
  function listen(path, on, opened) {
    const sep = path.includes("?") ? "&" : "?";
    const url = under(common.token ? `${path}${sep}token=${encodeURIComponent(common.token)}` : path);
    const source = new EventSource(url);
    const show = (state, text) => {
      live.className = "live " + state;
      live.textContent = text;
    };
    show("", "connecting");
    source.onopen = () => {
      show("on", "live");
      opened();
    };
    source.onerror = () =>
      source.readyState === EventSource.CLOSED ? show("", "offline") : show("", "reconnecting");
    for (const [type, handler] of Object.entries(on)) {
      source.addEventListener(type, (message) => {
        let data = null;
        try {
          data = JSON.parse(message.data);
        } catch (_) {
          return;
        }
        handler(data, source, show);
      });
    }
    common.stops.push(() => {
      source.close();
      show("", "offline");
    });
  }

  // A function that calls `fn` once, `ms` after the last of a burst of calls.
  function debounce(fn, ms) {
    let timer = null;
    common.stops.push(() => clearTimeout(timer));
    return () => {
      clearTimeout(timer);
      timer = setTimeout(fn, ms);
    };
  }

  function every(fn, ms) {
    const timer = setInterval(fn, ms);
    common.stops.push(() => clearInterval(timer));
  }

  function ago(ms) {
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 60) return `${s}s ago`;
    if (s < 3600) return `${Math.floor(s / 60)}m ago`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
    return new Date(ms).toLocaleDateString();
  }

  function duration(d) {
    const s = (d && d.secs + d.nanos / 1e9) || 0;
    if (s >= 1) return `${s.toFixed(s >= 10 ? 0 : 1)} s`;
    if (s >= 0.001) return `${(s * 1000).toFixed(1)} ms`;
    return `${Math.round(s * 1e6)} µs`;
  }

  // `{"Variant": {...}}` or `"Variant"` as [name, fields].
  function variant(value) {
    if (typeof value === "string") return [value, {}];
    if (value && typeof value === "object") {
      const [name] = Object.keys(value);
      return [name, value[name] || {}];
    }
    return [String(value), {}];
  }

  function failure(f) {
    const [name, x] = variant(f);
    switch (name) {
      case "Error": return (x.permanent ? "permanent error: " : "error: ") + x.message;
      case "TimedOut": return `timed out after ${duration(x.after)}`;
      case "Panicked": return `panicked: ${x.message}`;
      case "Interrupted": return "interrupted: its process stopped";
      default: return `${name} ${JSON.stringify(x)}`;
    }
  }

  // A run's error (RunError) in words.
  function runError(error) {
    const [name, x] = variant(error);
    switch (name) {
      case "StateFailed": {
        const last = (x.attempts || [])[x.attempts.length - 1];
        const n = (x.attempts || []).length;
        return `${x.state} failed after ${n} attempt${n === 1 ? "" : "s"}` + (last ? `: ${failure(last)}` : "");
      }
      case "NoSignal": return `${x.state} waits for a signal that only an engine delivers`;
      case "MaxVisits": return `${x.state} was entered more than its max_visits (${x.limit})`;
      case "MaxSteps": return `more than max_steps (${x.limit}) states, about to enter ${x.state}`;
      case "RolledBack":
        return `${runError(x.cause)}; rolled back ${(x.undone || []).join(", ") || "nothing"}` +
          ((x.failed || []).length ? `; compensations that failed: ${x.failed.map((f) => f.state).join(", ")}` : "");
      default: return `${name} ${JSON.stringify(x)}`;
    }
  }

  function badge(status, wait) {
    const shown = status === "running" && wait ? `waiting: ${wait}` : status;
    return h("span", { class: `badge ${status}${wait ? " waiting" : ""}`, text: shown });
  }

  function card(title, ...body) {
    return h("section", { class: "card" }, title ? h("h2", { text: title }) : null, ...body);
  }

  window.flowCommon = Object.assign(common, {
    main, notice, tokenInput, TOKEN, h, say, api, failed, listen, debounce, every, ago,
    duration, variant, failure, runError, badge, card,
  });
})();
