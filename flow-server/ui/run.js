// A run's page: its machine with the state it is in, its history, its live events, and the
// buttons and signal form that steer it.
"use strict";

(function () {
  const {
    main, h, say, api, failed, listen, debounce, duration, variant, failure, runError, badge, card,
  } = flowCommon;
  const { schemaForm } = flowForms;
  const FINISHED = new Set(["completed", "failed", "cancelled"]);

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
      const until = run.wake_at ? ` until ${new Date(run.wake_at).toLocaleString()}` : "";
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

  window.flowRun = { runPage };
})();
