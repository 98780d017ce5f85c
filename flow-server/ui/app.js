// The dashboard: the runs table and a run's page, over the server's own API. No build step
// and no dependencies; graph.js draws the machines.
"use strict";

(function () {
  const main = document.getElementById("main");
  const notice = document.getElementById("notice");
  const live = document.getElementById("live");
  const tokenInput = document.getElementById("token");
  const TOKEN = "flow.token";
  const FINISHED = new Set(["completed", "failed", "cancelled"]);
  const MOVES = "Started,Resumed,Transitioned,AttemptFailed,WaitingForSignal,SignalReceived," +
    "WaitingForPool,Compensating,Completed,Failed,Cancelled,Paused";
  let token = localStorage.getItem(TOKEN) || "";
  // What the page showing now must stop when another replaces it: streams and timers.
  let stops = [];
  // Which page is showing: a page whose calls return after another replaced it stops there.
  let page = 0;

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

  // The API's base: where this script was loaded from, less `ui/app.js`. The server may be
  // mounted under a prefix (nested in another router, or behind a proxy), and the page's
  // own address may or may not end in a slash.
  const base = new URL("..", document.currentScript.src);
  // `path` of the API, written from its root ("/runs"), under that base.
  const under = (path) => new URL(path.replace(/^\//, ""), base).href;

  // Calls the API; resolves to its JSON, or rejects with the server's message.
  async function api(method, path, body) {
    const headers = {};
    if (token) headers.Authorization = "Bearer " + token;
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
    const url = under(token ? `${path}${sep}token=${encodeURIComponent(token)}` : path);
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
    stops.push(() => {
      source.close();
      show("", "offline");
    });
  }

  // A function that calls `fn` once, `ms` after the last of a burst of calls.
  function debounce(fn, ms) {
    let timer = null;
    stops.push(() => clearTimeout(timer));
    return () => {
      clearTimeout(timer);
      timer = setTimeout(fn, ms);
    };
  }

  function every(fn, ms) {
    const timer = setInterval(fn, ms);
    stops.push(() => clearInterval(timer));
  }

  function ago(ms) {
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 60) return `${s}s ago`;
    if (s < 3600) return `${Math.floor(s / 60)}m ago`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
    return new Date(ms).toLocaleDateString();
  }

  const when = (t) => (t ? t.secs_since_epoch * 1000 + Math.floor(t.nanos_since_epoch / 1e6) : 0);

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

  // ——— Forms from JSON Schemas ———
  //
  // `GET /machines` carries the JSON Schema (2020-12, as schemars writes it) of a machine's
  // input and of each signal, for types that have one. A form is built from it: an object's
  // properties become labelled inputs (string → text, integer and number → number, boolean
  // → checkbox, an enum of strings → select), an enum with data (`"Approve"` or
  // `{"Reject": "why"}`) a select of its variants with the chosen one's value below, and
  // anything else (arrays, maps, nested shapes this does not know) a JSON textarea for that
  // field. The form writes the JSON it makes into the textarea below it, which is what is
  // sent, and reads back what is typed there.

  // `schema` with a `$ref` into the root's `$defs` followed.
  function resolve(root, schema) {
    for (let i = 0; schema && typeof schema.$ref === "string" && i < 16; i++) {
      const name = schema.$ref.startsWith("#/$defs/") ? decodeURIComponent(schema.$ref.slice(8)) : null;
      schema = name !== null && root.$defs ? root.$defs[name] : null;
    }
    return schema && typeof schema === "object" ? schema : {};
  }

  // The one type of `schema`, and whether it also allows null (`Option<T>`).
  function typeOf(schema) {
    const types = Array.isArray(schema.type) ? schema.type : schema.type ? [schema.type] : [];
    const real = types.filter((t) => t !== "null");
    return [real.length === 1 ? real[0] : null, types.includes("null")];
  }

  // The strings a plain enum allows (`enum`, or `oneOf` of string constants), or null.
  function stringChoices(schema) {
    if (Array.isArray(schema.enum) && schema.enum.length && schema.enum.every((v) => typeof v === "string")) {
      return schema.enum;
    }
    const alternatives = schema.oneOf || schema.anyOf;
    if (!Array.isArray(alternatives) || !alternatives.length) return null;
    const choices = [];
    for (const alternative of alternatives) {
      if (typeof alternative.const === "string") choices.push(alternative.const);
      else if (stringChoices(alternative)) choices.push(...stringChoices(alternative));
      else return null;
    }
    return choices;
  }

  // The variants of an externally tagged enum with data: [name, schema of its value or null].
  function variants(root, schema) {
    const alternatives = schema.oneOf || schema.anyOf;
    if (!Array.isArray(alternatives) || !alternatives.length) return null;
    const found = [];
    for (const raw of alternatives) {
      const alternative = resolve(root, raw);
      const unit = stringChoices(alternative) || (typeof alternative.const === "string" ? [alternative.const] : null);
      const names = Object.keys(alternative.properties || {});
      if (unit) found.push(...unit.map((name) => [name, null]));
      else if (typeOf(alternative)[0] === "object" && names.length === 1) found.push([names[0], alternative.properties[names[0]]]);
      else return null;
    }
    return found;
  }

  // A control for a value of `schema`: { node, get(), set(value), raw }. `get` returns
  // undefined for an optional field left empty and throws on a field that is not JSON.
  function widget(root, raw, path, optional) {
    const schema = resolve(root, raw);
    const [type, nullable] = typeOf(schema);
    const blank = optional || nullable;
    const empty = () => (nullable ? null : undefined);
    const choices = stringChoices(schema);
    if (choices) {
      const select = h("select", { "data-field": path },
        blank ? h("option", { value: "", text: "—" }) : null, choices.map((c) => h("option", { value: c, text: c })));
      return {
        node: select,
        get: () => (select.value === "" && blank ? empty() : select.value),
        set: (v) => { select.value = typeof v === "string" ? v : ""; },
      };
    }
    const tagged = !type && variants(root, schema);
    if (tagged) {
      const select = h("select", { "data-field": path }, tagged.map(([name]) => h("option", { value: name, text: name })));
      const values = new Map(tagged.filter(([, s]) => s).map(([name, s]) => [name, widget(root, s, `${path}.${name}`, false)]));
      const holder = h("div", { class: "schema-variant" });
      const show = () => {
        const chosen = values.get(select.value);
        holder.replaceChildren(...(chosen ? [h("label", { class: "schema-field" }, h("span", { text: select.value }), chosen.node)] : []));
      };
      select.addEventListener("change", show);
      show();
      return {
        node: h("div", { class: "schema-enum" }, select, holder),
        get: () => {
          const chosen = values.get(select.value);
          return chosen ? { [select.value]: chosen.get() } : select.value;
        },
        set: (v) => {
          const [name, inner] = typeof v === "string" ? [v, undefined] : v && typeof v === "object" ? Object.entries(v)[0] || [] : [];
          if (!tagged.some(([n]) => n === name)) return;
          select.value = name;
          show();
          if (values.has(name)) values.get(name).set(inner);
        },
      };
    }
    if (type === "string") {
      const input = h("input", { type: "text", "data-field": path, spellcheck: "false", placeholder: blank ? "optional" : null });
      return {
        node: input,
        get: () => (input.value === "" && blank ? empty() : input.value),
        set: (v) => { input.value = typeof v === "string" ? v : ""; },
      };
    }
    if (type === "integer" || type === "number") {
      const input = h("input", { type: "number", "data-field": path, step: type === "integer" ? "1" : "any",
        min: schema.minimum, max: schema.maximum, placeholder: blank ? "optional" : null });
      return {
        node: input,
        get: () => (input.value === "" ? (blank ? empty() : undefined) : Number(input.value)),
        set: (v) => { input.value = typeof v === "number" ? String(v) : ""; },
      };
    }
    if (type === "boolean") {
      const input = h("input", { type: "checkbox", "data-field": path });
      return { node: input, get: () => input.checked, set: (v) => { input.checked = v === true; } };
    }
    if (type === "null") {
      return { node: h("span", { class: "muted", text: "null" }), get: () => null, set: () => {} };
    }
    if (type === "object" && schema.properties && !schema.additionalProperties) {
      const required = new Set(schema.required || []);
      const fields = Object.entries(schema.properties).map(([name, s]) => [name, widget(root, s, `${path}.${name}`, !required.has(name))]);
      return {
        node: h("div", { class: "schema-object" }, fields.map(([name, w]) =>
          h("label", { class: "schema-field" }, h("span", { text: name + (required.has(name) ? "" : " (optional)") }), w.node))),
        get: () => {
          const value = {};
          for (const [name, w] of fields) {
            const v = w.get();
            if (v !== undefined) value[name] = v;
          }
          return value;
        },
        set: (v) => {
          for (const [name, w] of fields) w.set(v && typeof v === "object" ? v[name] : undefined);
        },
        object: true,
      };
    }
    // Anything else: that field as JSON.
    const area = h("textarea", { rows: 2, spellcheck: "false", "data-field": path, placeholder: "JSON" + (blank ? ", optional" : "") });
    return {
      node: area,
      get: () => {
        if (!area.value.trim()) return blank ? empty() : undefined;
        try {
          return JSON.parse(area.value);
        } catch (error) {
          throw new Error(`${path} is not JSON: ${error.message}`);
        }
      },
      set: (v) => { area.value = v === undefined ? "" : JSON.stringify(v); },
      raw: true,
    };
  }

  // The form for `schema` in front of the JSON textarea `json`, a value that is not an
  // object labelled `label` (or the schema's title): { node, read }. It writes
  // into `json` as it is edited (and at once, if `json` is empty); `read` fills it from
  // `json` (call it when `json` is typed in). Null when there is no schema, or nothing more than a textarea to build.
  function schemaForm(schema, json, id, label) {
    if (!schema || typeof schema !== "object") return null;
    const root = widget(schema, schema, id, false);
    if (root.raw) return null;
    const node = h("div", { class: "schema-form", id: id + "-fields" }, root.object ? root.node :
      h("label", { class: "schema-field" }, h("span", { text: label || schema.title || "value" }), root.node));
    const write = () => {
      try {
        const value = root.get();
        json.value = value === undefined ? "" : JSON.stringify(value);
        json.classList.remove("stale");
      } catch (error) {
        json.classList.add("stale");
      }
    };
    const read = () => {
      try {
        if (json.value.trim()) root.set(JSON.parse(json.value));
      } catch (_) {
        // Not JSON yet: the form stays as it was.
      }
    };
    node.addEventListener("input", write);
    node.addEventListener("change", write);
    // What the form shows is what is sent: an empty textarea starts with the form's value.
    if (json.value.trim()) read();
    else write();
    return { node, read };
  }

  // ——— The runs table ———

  async function runsPage() {
    const mine = page;
    let machines;
    try {
      machines = await api("GET", "/machines");
      if (mine !== page) return;
    } catch (error) {
      main.replaceChildren(card("Runs", h("p", { class: "muted", text: "Nothing to show yet." })));
      return failed(error);
    }
    const names = machines.map((m) => m.name);
    const option = (value, text) => h("option", { value, text: text || value });
    const machine = h("select", { id: "filter-machine" }, option("", "every machine"), names.map((n) => option(n)));
    const status = h("select", { id: "filter-status" }, option("", "every status"),
      ["running", "paused", "completed", "failed", "cancelled", "stuck"].map((s) => option(s)));
    const wait = h("select", { id: "filter-wait" }, option("", "any wait"),
      ["signal", "timer", "backoff", "join"].map((w) => option(w)));
    const body = h("tbody");
    const count = h("span", { class: "muted" });
    const more = h("button", { id: "runs-more", type: "button", text: "More", hidden: true });
    // How many runs to show: a page, and a page more for each click on "More". The server
    // lists the newest first, up to 500 a call, with the cursor of the page that follows.
    const PAGE = 50;
    let wanted = PAGE;

    async function refresh() {
      const mine = page;
      const query = new URLSearchParams();
      if (machine.value) query.set("machine", machine.value);
      if (status.value) query.set("status", status.value);
      if (wait.value) query.set("wait", wait.value);
      const runs = [];
      let next = null;
      try {
        do {
          query.set("limit", String(Math.min(500, wanted - runs.length)));
          if (next) query.set("cursor", next);
          const listed = await api("GET", "/runs?" + query);
          runs.push(...listed.runs);
          next = listed.next;
        } while (next && runs.length < wanted);
      } catch (error) {
        return failed(error);
      }
      if (mine !== page) return;
      count.textContent = (runs.length === 1 ? "1 run" : `${runs.length} runs`) + (next ? ", and more" : "");
      more.hidden = !next;
      body.replaceChildren(...runs.map((run) =>
        h("tr", { "data-run": run.run },
          h("td", {}, h("a", { href: `#/runs/${run.run}`, class: "mono", text: run.run })),
          h("td", { text: run.machine }),
          h("td", { class: "mono", text: run.key || "" }),
          h("td", {}, badge(run.status, run.wait), run.note ? h("div", { class: "muted small", text: run.note }) : null),
          h("td", { title: new Date(run.created).toISOString(), text: ago(run.created) }),
          h("td", { title: new Date(run.updated).toISOString(), text: ago(run.updated) }))));
      if (!runs.length) body.append(h("tr", {}, h("td", { colspan: 6, class: "muted", text: "No runs match." })));
    }
    const filtered = () => {
      wanted = PAGE;
      refresh();
    };
    machine.addEventListener("change", filtered);
    status.addEventListener("change", filtered);
    wait.addEventListener("change", filtered);
    more.addEventListener("click", () => {
      wanted += PAGE;
      refresh();
    });

    main.replaceChildren(
      startForm(machines),
      card("Runs",
        h("div", { class: "filters" }, h("label", {}, "Machine ", machine), h("label", {}, "Status ", status),
          h("label", {}, "Waiting for ", wait), count),
        h("table", { class: "runs" },
          h("thead", {}, h("tr", {}, ["Run", "Machine", "Key", "Status", "Created", "Updated"].map((t) => h("th", { text: t })))),
          body),
        h("div", { class: "row more" }, more)));
    const soon = debounce(refresh, 250);
    // Listening first, then looking: no change falls in between.
    // The kinds that move a run in this table, not each attempt, checkpoint or line of
    // progress: the table is read afresh when one comes, and the server makes less JSON.
    listen(`/events?kinds=${MOVES}`, { message: soon, lagged: soon, reset: soon }, soon);
    // Runs that execute on other workers send no events here: look now and then too.
    every(refresh, 5000);
    await refresh();
  }

  function startForm(machines) {
    const select = h("select", { id: "start-machine" }, machines.map((m) => h("option", { value: m.name, text: m.name })));
    const hint = h("div", { class: "muted small" });
    const input = h("textarea", { id: "start-input", rows: 3, spellcheck: "false" });
    const key = h("input", { id: "start-key", placeholder: "optional business key", spellcheck: "false" });
    const context = h("textarea", { id: "start-context", rows: 2, spellcheck: "false", placeholder: "the machine's default context" });
    const contextBox = h("details", {}, h("summary", { text: "Context" }), context);
    const fields = h("div");
    let form = null;
    input.addEventListener("input", () => form && form.read());
    const sync = () => {
      const m = machines.find((x) => x.name === select.value);
      if (!m) return;
      const start = m.graph.states[m.graph.start] || {};
      const payload = (start.payload || []).map((p) => p.join(": ")).join(", ");
      input.value = localStorage.getItem("flow.input." + m.name) || "";
      // A payload of one value is labelled with its parameter's name.
      const single = (start.payload || []).length === 1 ? start.payload[0][0] : null;
      form = schemaForm(m.input_schema, input, "start", single);
      fields.replaceChildren(form ? form.node : "");
      hint.textContent = `Input: the payload of ${start.name}` + (payload ? ` (${payload})` : " (none)") +
        (form ? ", from the form or as JSON." : ", as JSON.");
      input.placeholder = payload ? `JSON for ${payload}` : "null";
      contextBox.open = !m.default_context;
      context.placeholder = m.default_context ? "the machine's default context" : "required: this machine has no default context";
    };
    select.addEventListener("change", sync);
    sync();
    const submit = async (event) => {
      event.preventDefault();
      const body = {};
      try {
        if (input.value.trim()) body.input = JSON.parse(input.value);
        if (context.value.trim()) body.context = JSON.parse(context.value);
      } catch (error) {
        return say("Not JSON: " + error.message);
      }
      if (key.value.trim()) body.key = key.value.trim();
      try {
        const started = await api("POST", `/machines/${encodeURIComponent(select.value)}/runs`, JSON.stringify(body));
        localStorage.setItem("flow.input." + select.value, input.value);
        say(`Started run ${started.run}.`, "ok");
        location.hash = `#/runs/${started.run}`;
      } catch (error) {
        failed(error);
      }
    };
    return card("Start a run",
      h("form", { class: "start", onsubmit: submit },
        h("label", {}, "Machine ", select), hint, fields, input,
        h("div", { class: "row" }, key, h("button", { type: "submit", id: "start-button", text: "Start" })),
        contextBox));
  }

  // ——— A run's page ———

  function timeline(run) {
    const rows = run.history.map((entry) => {
      const [name, x] = variant(entry.outcome);
      let text, kind = "ok";
      switch (name) {
        case "Transitioned": text = `→ ${x.to}`; break;
        case "Completed": text = "completed"; break;
        case "Forked": text = `forked; joins at ${x.join}`; break;
        case "NoSignal": text = `no signal in time → ${x.to}`; kind = "wait"; break;
        case "Caught": text = `failed for good → fallback ${x.to}`; kind = "error"; break;
        case "Compensated": text = "compensated"; kind = "undo"; break;
        case "Failed":
        case "CompensationFailed":
          text = (name === "Failed" ? "" : "compensation ") + failure(x.failure) +
            (x.retry_in ? `; retry in ${duration(x.retry_in)}` : "; no retry");
          kind = "error";
          break;
        default: text = `${name} ${JSON.stringify(x)}`;
      }
      return h("li", { class: kind },
        h("span", { class: "state", text: entry.state }),
        h("span", { class: "attempt", text: `attempt ${entry.attempt}` }),
        h("span", { class: "what", text }),
        h("span", { class: "took", text: duration(entry.duration) }));
    });
    let now = null;
    if (run.status === "running" && run.wait) {
      const until = run.wake_at ? ` until ${new Date(when(run.wake_at)).toLocaleString()}` : "";
      now = `waits for ${run.wait === "backoff" ? "its retry's backoff" : "a " + run.wait}${until}`;
    } else if (run.status === "running") now = run.waiting_for_pool ? `waits for pool ${run.waiting_for_pool}` : "running";
    else if (run.status === "completed") now = "completed with " + JSON.stringify(run.output);
    else if (run.status === "failed") now = "failed: " + (run.error ? runError(run.error) : "see the run's note");
    else now = run.status + (run.note ? `: ${run.note}` : "");
    rows.push(h("li", { class: "now " + run.status },
      h("span", { class: "state", text: run.state }), h("span", { class: "attempt", text: "now" }),
      h("span", { class: "what", text: now }), h("span", { class: "took" })));
    return h("ol", { class: "timeline", id: "timeline" }, rows);
  }

  function eventText(event) {
    const [name, x] = variant(event.kind);
    switch (name) {
      case "Entered": return `entered, attempt ${x.attempt}`;
      case "Transitioned": return `→ ${x.to}`;
      case "AttemptFailed": return `attempt ${x.attempt} failed: ${failure(x.failure)}`;
      case "Progress": return `progress: ${x.message}` + (x.fraction != null ? ` (${Math.round(x.fraction * 100)}%)` : "");
      case "WaitingForSignal": return `waits for ${x.signal}`;
      case "Failed": return `failed: ${x.error}`;
      default: return Object.keys(x).length ? `${name} ${JSON.stringify(x)}` : name;
    }
  }

  async function runPage(id) {
    const title = h("h1", {}, "Run ", h("span", { class: "mono", text: id }));
    const facts = h("div", { class: "facts" });
    const diagram = h("div", { class: "diagram", id: "diagram" });
    const history = h("div");
    const record = h("pre", { class: "json", id: "record" });
    const log = h("ol", { class: "events", id: "events" });
    const signalType = h("span", { class: "mono" });
    const signalInput = h("textarea", { id: "signal-input", rows: 3, spellcheck: "false" });
    const actions = {
      cancel: h("button", { id: "cancel", class: "danger", text: "Cancel" }),
      pause: h("button", { id: "pause", text: "Pause" }),
      resume: h("button", { id: "resume", text: "Resume" }),
      retry: h("button", { id: "retry", text: "Retry now", hidden: true,
        title: "Start the next attempt now instead of at the end of the backoff" }),
    };
    const remove = h("button", { id: "delete", class: "danger", text: "Delete", hidden: true,
      title: "Delete this finished run and its history" });
    const context = h("pre", { class: "json", id: "context" });
    const branchList = h("ul", { class: "branches", id: "branches" });
    const branchCard = card("Branches", h("p", { class: "muted small", text: "The runs of the fork this run waits for." }), branchList);
    branchCard.hidden = true;
    const noSignal = h("p", { class: "muted small signal-none", text: "This run waits for no signal now." });
    const signalFields = h("div");
    let signalSchemaForm = null;
    signalInput.addEventListener("input", () => signalSchemaForm && signalSchemaForm.read());
    const signalForm = h("form", { class: "signal", id: "signal-form", hidden: true },
      h("label", { for: "signal-input" }, "Signal ", signalType), signalFields, signalInput,
      h("button", { type: "submit", id: "signal-send", text: "Send signal" }));
    main.replaceChildren(
      h("p", {}, h("a", { href: "#/", text: "← Runs" })),
      h("div", { class: "head" }, title, facts),
      h("div", { class: "grid" },
        card("Machine", diagram),
        card("Steer", h("div", { class: "row" }, actions.cancel, actions.pause, actions.resume, actions.retry, remove), noSignal, signalForm)),
      h("div", { class: "grid" }, card("History", history), card("Live events", log)),
      h("div", { class: "grid" }, card("Context", context), branchCard),
      card("Run record", h("p", { class: "muted small", text: "GET /runs/" + id + ", without its history." }), record));

    let run = null;
    let machine = null;
    let svg = null;
    let signalKey = "";

    function draw(current, status) {
      if (!svg || !run) return;
      const visited = new Set(run.history.map((e) => e.state).concat([current]));
      const taken = new Set();
      for (const e of run.history) {
        const [name, x] = variant(e.outcome);
        if (x.to && name !== "Failed") taken.add(`${e.state}>${x.to}`);
      }
      flowGraph.highlight(svg, current, status, visited, taken);
    }

    async function refresh() {
      try {
        run = await api("GET", `/runs/${id}`);
        if (!machine) {
          machine = await api("GET", `/machines/${encodeURIComponent(run.machine)}`);
          svg = flowGraph.render(machine.graph);
          // Drawn larger than its natural size, up to half again, where the card has room.
          svg.style.maxWidth = `${Math.round(svg.width.baseVal.value * 1.5)}px`;
          diagram.replaceChildren(svg);
        }
      } catch (error) {
        return failed(error);
      }
      const shown = run.status === "running" && run.wait ? "waiting" : run.status;
      facts.replaceChildren(
        h("span", { id: "run-status" }, badge(run.status, run.wait)),
        h("span", {}, "machine ", h("b", { text: run.machine }), ` v${run.version}`),
        h("span", {}, "state ", h("b", { id: "run-state", text: run.state })),
        run.key ? h("span", {}, "key ", h("b", { class: "mono", text: run.key })) : "",
        run.parent ? h("span", {}, "branch of ", h("a", { href: `#/runs/${run.parent}`, id: "run-parent", class: "mono", text: run.parent })) : "");
      draw(run.state, shown);
      history.replaceChildren(timeline(run));
      const { history: _, ...rest } = run;
      record.textContent = JSON.stringify(rest, null, 2);
      const finished = FINISHED.has(run.status);
      actions.cancel.disabled = finished;
      actions.pause.disabled = finished || run.status === "paused";
      actions.resume.disabled = run.status !== "paused";
      actions.retry.hidden = !(run.status === "running" && run.wait === "backoff");
      remove.hidden = !finished;
      context.textContent = JSON.stringify(run.context, null, 2);
      branches(run.status === "running" && run.wait === "join");
      const state = machine && machine.graph.states.find((s) => s.name === run.state);
      const waits = run.status === "running" && run.wait === "signal" && state && state.signal;
      signalForm.hidden = !waits;
      noSignal.hidden = Boolean(waits);
      if (waits && signalKey !== `${run.machine}.${run.state}`) {
        signalKey = `${run.machine}.${run.state}`;
        signalType.textContent = `${state.signal.ty}, for ${run.state}`;
        signalInput.placeholder = `JSON of type ${state.signal.ty}`;
        signalInput.value = localStorage.getItem("flow.signal." + signalKey) || "";
        const schemas = machine.signal_schemas || {};
        signalSchemaForm = schemaForm(schemas[run.state], signalInput, "signal");
        signalFields.replaceChildren(signalSchemaForm ? signalSchemaForm.node : "");
      }
      if (!waits) signalKey = "";
    }

    // The branch runs of the fork the run waits for, each a link to its page.
    let shownBranches = "";
    async function branches(joining) {
      branchCard.hidden = !joining;
      if (!joining) return (shownBranches = "");
      let ids;
      try {
        ids = await api("GET", `/runs/${id}/branches`);
      } catch (error) {
        return failed(error);
      }
      if (ids.join() === shownBranches) return;
      shownBranches = ids.join();
      branchList.replaceChildren(...ids.map((branch, index) =>
        h("li", {}, h("span", { class: "muted", text: `${index + 1}. ` }),
          h("a", { href: `#/runs/${branch}`, class: "mono", "data-branch": branch, text: branch }))));
    }

    remove.addEventListener("click", async () => {
      if (!confirm(`Delete run ${id} and its history? This cannot be undone.`)) return;
      try {
        await api("DELETE", `/runs/${id}`);
        // Said once the runs table has replaced this page (which clears what was said).
        window.addEventListener("hashchange", () => say(`Deleted run ${id}.`, "ok"), { once: true });
        location.hash = "#/";
      } catch (error) {
        failed(error);
      }
    });
    for (const [name, button] of Object.entries(actions)) {
      button.addEventListener("click", async () => {
        try {
          await api("POST", `/runs/${id}/${name}`);
          say(name === "retry" ? "Asked the run to retry now." : `Asked the run to ${name}.`, "ok");
        } catch (error) {
          failed(error);
        }
        soon();
      });
    }
    signalForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        JSON.parse(signalInput.value);
      } catch (error) {
        return say("The signal is not JSON: " + error.message);
      }
      try {
        await api("POST", `/runs/${id}/signal`, signalInput.value);
        localStorage.setItem("flow.signal." + signalKey, signalInput.value);
        say("Signal sent.", "ok");
      } catch (error) {
        failed(error);
      }
      soon();
    });

    const soon = debounce(refresh, 150);
    const note = (cls, text, state) => {
      log.prepend(h("li", { class: cls }, h("time", { text: new Date().toLocaleTimeString() }),
        state ? h("span", { class: "state", text: state }) : null, h("span", { text })));
      while (log.children.length > 100) log.lastChild.remove();
    };
    // Listening first, then looking: no change falls in between. A finished run's stream is
    // its end at once.
    listen(`/runs/${id}/events`, {
      message: (event) => {
        note("", eventText(event), event.state);
        const [name, x] = variant(event.kind);
        const status = { Completed: "completed", Failed: "failed", Cancelled: "cancelled", Paused: "paused", WaitingForSignal: "waiting" }[name];
        // The diagram moves at once; the rest follows from the store.
        draw(name === "Transitioned" ? x.to : event.state, status || "running");
        soon();
      },
      // A checkpoint read from the store: the run executes on another worker, or the
      // stream came back after a drop. It moves the page as events do.
      checkpoint: (checkpoint) => {
        for (const entry of checkpoint.entries) {
          const [name, x] = variant(entry.outcome);
          note("", `checkpoint ${checkpoint.seq}: ` + (x.to ? `→ ${x.to}` : name), entry.state);
        }
        if (checkpoint.state) draw(checkpoint.state, checkpoint.wait ? "waiting" : checkpoint.status);
        soon();
      },
      lagged: (lagged) => {
        note("lagged", `missed ${lagged.missed} events`);
        soon();
      },
      reset: (reset) => {
        note("lagged", reset.reason);
        soon();
      },
      end: (end, source, show) => {
        note("end", `the run ${end.status}`);
        source.close();
        show("", "ended");
        soon();
      },
    }, soon);
    await refresh();
  }

  function route() {
    for (const stop of stops) stop();
    stops = [];
    page += 1;
    if (notice.classList.contains("ok")) notice.hidden = true;
    const path = location.hash.replace(/^#/, "") || "/";
    const run = path.match(/^\/runs\/([0-9a-fA-F]{32})$/);
    if (run) runPage(run[1].toLowerCase());
    else runsPage();
  }

  tokenInput.value = token;
  document.getElementById("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    token = tokenInput.value.trim();
    if (token) localStorage.setItem(TOKEN, token);
    else localStorage.removeItem(TOKEN);
    notice.hidden = true;
    route();
  });
  window.addEventListener("hashchange", route);
  route();
})();
