// Draws a machine's graph (as GET /machines/{name} gives it) as SVG: states in layers from
// left to right, in the order a run meets them, edges that go back drawn below.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const NODE_H = 44;
  const GAP_X = 64;
  const GAP_Y = 26;
  const PAD = 16;
  const START_R = 7;

  function el(tag, attrs, parent) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    if (parent) parent.appendChild(node);
    return node;
  }

  // The edges to draw, once each: the declared ones, each fork's edges to its branches, and
  // from each branch's ends (the `branch_end` states it reaches) to the fork's join.
  function edgesOf(graph) {
    const seen = new Set();
    const edges = [];
    const add = (from, to, kind) => {
      const key = from + ">" + to;
      if (seen.has(key)) return;
      seen.add(key);
      edges.push({ from, to, kind });
    };
    for (const [from, to] of graph.edges || []) add(from, to, "edge");
    const byName = new Map(graph.states.map((s) => [s.name, s]));
    for (const state of graph.states) {
      if (!state.fork) continue;
      const branches = state.fork.branches || [];
      for (const branch of branches) add(state.name, branch, "branch");
      if (!state.fork.join) continue;
      const seen = new Set(branches);
      const queue = [...branches];
      let ends = 0;
      while (queue.length) {
        const name = queue.shift();
        if (byName.get(name) && byName.get(name).branch_end) {
          add(name, state.fork.join, "join");
          ends += 1;
        }
        for (const [from, to] of graph.edges || []) {
          if (from === name && !seen.has(to)) {
            seen.add(to);
            queue.push(to);
          }
        }
      }
      if (!ends) add(state.name, state.fork.join, "join");
    }
    return edges;
  }

  // Layers: a depth-first walk from the start marks the edges that go back (loops); the
  // rest form a DAG, and each state sits one layer after its furthest predecessor.
  function layout(graph) {
    const names = graph.states.map((s) => s.name);
    const index = new Map(names.map((n, i) => [n, i]));
    const edges = edgesOf(graph).filter((e) => index.has(e.from) && index.has(e.to));
    const out = names.map(() => []);
    for (const e of edges) out[index.get(e.from)].push(e);

    const state = names.map(() => 0); // 0 unseen, 1 on the walk, 2 done
    const order = [];
    const walk = (root) => {
      const stack = [[root, 0]];
      state[root] = 1;
      order.push(root);
      while (stack.length) {
        const top = stack[stack.length - 1];
        const [node, next] = top;
        if (next >= out[node].length) {
          state[node] = 2;
          stack.pop();
          continue;
        }
        top[1] += 1;
        const edge = out[node][next];
        const to = index.get(edge.to);
        if (state[to] === 1) edge.back = true;
        else if (state[to] === 0) {
          state[to] = 1;
          order.push(to);
          stack.push([to, 0]);
        }
      }
    };
    const start = Math.min(Math.max(graph.start || 0, 0), names.length - 1);
    if (names.length) walk(start);
    for (let i = 0; i < names.length; i++) if (state[i] === 0) walk(i);

    const layer = names.map(() => 0);
    // Longest path over the forward edges, in the walk's order repeated until it settles.
    for (let round = 0; round < names.length; round++) {
      let moved = false;
      for (const e of edges) {
        if (e.back) continue;
        const [a, b] = [index.get(e.from), index.get(e.to)];
        if (layer[b] < layer[a] + 1) {
          layer[b] = layer[a] + 1;
          moved = true;
        }
      }
      if (!moved) break;
    }

    const layers = [];
    for (const i of order) (layers[layer[i]] = layers[layer[i]] || []).push(i);
    const position = new Map();
    const place = () => layers.forEach((row) => row.forEach((n, k) => position.set(n, k)));
    place();
    // A few sweeps of the barycenter heuristic, to uncross edges.
    const neighbours = (n, forward) =>
      edges
        .filter((e) => !e.back && index.get(forward ? e.to : e.from) === n)
        .map((e) => index.get(forward ? e.from : e.to));
    for (let sweep = 0; sweep < 4; sweep++) {
      const down = sweep % 2 === 0;
      for (const row of down ? layers.slice(1) : layers.slice(0, -1).reverse()) {
        const weight = (n) => {
          const ns = neighbours(n, down);
          return ns.length ? ns.reduce((s, m) => s + position.get(m), 0) / ns.length : position.get(n);
        };
        row.sort((a, b) => weight(a) - weight(b));
        place();
      }
    }

    const width = (i) => {
      const s = graph.states[i];
      const sub = s.signal ? ("waits for " + s.signal.ty).length * 6.2 : 0;
      return Math.max(96, names[i].length * 8.4 + 32, sub + 24);
    };
    const tallest = Math.max(1, ...layers.map((row) => row.length));
    const boxes = names.map(() => null);
    let x = PAD + START_R * 2 + 22;
    for (const row of layers) {
      const w = Math.max(...row.map(width));
      const top = PAD + ((tallest - row.length) * (NODE_H + GAP_Y)) / 2;
      row.forEach((n, k) => {
        boxes[n] = { x: x + (w - width(n)) / 2, y: top + k * (NODE_H + GAP_Y), w: width(n), h: NODE_H };
      });
      x += w + GAP_X;
    }
    return { names, index, edges, layer, boxes, start, right: x - GAP_X + PAD };
  }

  function edgePath(e, from, to, g, k) {
    if (from === to) {
      const cx = from.x + from.w / 2;
      return `M${cx - 14},${from.y} C${cx - 34},${from.y - 34} ${cx + 34},${from.y - 34} ${cx + 14},${from.y}`;
    }
    if (!e.back) {
      const [x1, y1, x2, y2] = [from.x + from.w, from.y + from.h / 2, to.x, to.y + to.h / 2];
      const dx = Math.max(24, (x2 - x1) / 2);
      return `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}`;
    }
    // Back: under every state of the layers it spans.
    const [lo, hi] = [Math.min(g.layer[e.a], g.layer[e.b]), Math.max(g.layer[e.a], g.layer[e.b])];
    let bottom = 0;
    g.boxes.forEach((b, i) => {
      if (g.layer[i] >= lo && g.layer[i] <= hi) bottom = Math.max(bottom, b.y + b.h);
    });
    const y = bottom + 18 + 12 * k;
    const [x1, x2] = [from.x + from.w / 2 + 8, to.x + to.w / 2 - 8];
    return `M${x1},${from.y + from.h} C${x1},${y} ${x2},${y} ${x2},${to.y + to.h}`;
  }

  // The graph as an <svg>; its states are <g class="state" data-state="name">, its edges
  // <path class="edge" data-from data-to>.
  function render(graph) {
    const g = layout(graph);
    const svg = el("svg", { class: "machine", role: "img", "aria-label": "the machine's states and transitions" });
    const defs = el("defs", {}, svg);
    for (const id of ["arrow", "arrow-taken"]) {
      const marker = el("marker", { id, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 10, markerHeight: 10, markerUnits: "userSpaceOnUse", orient: "auto-start-reverse" }, defs);
      el("path", { d: "M0,0 L10,5 L0,10 z", class: id }, marker);
    }
    const edgeLayer = el("g", {}, svg);
    const nodeLayer = el("g", {}, svg);
    let bottom = 0;
    g.boxes.forEach((b) => (bottom = Math.max(bottom, b.y + b.h)));
    let back = 0;
    for (const e of g.edges) {
      e.a = g.index.get(e.from);
      e.b = g.index.get(e.to);
      const d = edgePath(e, g.boxes[e.a], g.boxes[e.b], g, e.back && e.a !== e.b ? back++ : 0);
      const path = el("path", { d, class: "edge " + e.kind + (e.back ? " back" : ""), "data-from": e.from, "data-to": e.to, "marker-end": "url(#arrow)" }, edgeLayer);
      el("title", {}, path).textContent = `${e.from} → ${e.to}`;
    }
    const first = g.boxes[g.start];
    if (first) {
      const [cx, cy] = [PAD + START_R, first.y + first.h / 2];
      el("circle", { cx, cy, r: START_R, class: "start-dot" }, edgeLayer);
      el("path", { d: `M${cx + START_R},${cy} L${first.x},${cy}`, class: "edge", "marker-end": "url(#arrow)" }, edgeLayer);
    }
    graph.states.forEach((s, i) => {
      const b = g.boxes[i];
      const node = el("g", { class: "state" + (s.end ? " end" : "") + (s.signal ? " signal" : ""), "data-state": s.name, transform: `translate(${b.x},${b.y})` }, nodeLayer);
      el("rect", { width: b.w, height: b.h, rx: 10, class: "box" }, node);
      if (s.end) el("rect", { x: 3, y: 3, width: b.w - 6, height: b.h - 6, rx: 8, class: "inner" }, node);
      const name = el("text", { x: b.w / 2, y: s.signal ? 19 : b.h / 2 + 5, class: "name" }, node);
      name.textContent = s.name;
      if (s.signal) {
        const sub = el("text", { x: b.w / 2, y: 34, class: "sub" }, node);
        sub.textContent = "waits for " + s.signal.ty;
      }
      el("title", {}, node).textContent = describe(s);
      bottom = Math.max(bottom, b.y + b.h);
    });
    const height = bottom + PAD + (back ? 18 + 12 * back : 0);
    svg.setAttribute("viewBox", `0 0 ${g.right} ${height}`);
    svg.setAttribute("width", g.right);
    svg.setAttribute("height", height);
    return svg;
  }

  function describe(s) {
    const parts = [s.name];
    if (s.start) parts.push("start");
    if (s.end) parts.push("end" + (s.output ? ": " + s.output : ""));
    if (s.payload && s.payload.length) parts.push("payload: " + s.payload.map((p) => p.join(": ")).join(", "));
    if (s.signal) parts.push("waits for signal " + s.signal.ty + (s.signal.default ? ", else " + s.signal.default : ""));
    const retry = s.policy && s.policy.retry;
    if (retry && retry.attempts > 1) parts.push(retry.attempts + " attempts");
    if (s.compensate) parts.push("compensated by " + s.compensate);
    return parts.join("\n");
  }

  // Lights up `current` (with the run's `status`), the states in `visited` and the
  // transitions in `taken` ("from>to").
  function highlight(svg, current, status, visited, taken) {
    for (const node of svg.querySelectorAll("g.state")) {
      const name = node.getAttribute("data-state");
      node.classList.toggle("visited", visited.has(name));
      node.classList.toggle("current", name === current);
      for (const c of [...node.classList]) if (c.startsWith("is-")) node.classList.remove(c);
      if (name === current) node.classList.add("is-" + status);
    }
    for (const edge of svg.querySelectorAll("path.edge[data-from]")) {
      const on = taken.has(edge.getAttribute("data-from") + ">" + edge.getAttribute("data-to"));
      edge.classList.toggle("taken", on);
      edge.setAttribute("marker-end", on ? "url(#arrow-taken)" : "url(#arrow)");
    }
  }

  window.flowGraph = { render, highlight, layout };
})();
