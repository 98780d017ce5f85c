// The runs table: the form that starts a run, and the runs, filtered, a page at a time, and
// read afresh as they move.
"use strict";

(function () {
  const { main, h, say, api, failed, listen, debounce, every, ago, badge, card } = flowCommon;
  const { schemaForm } = flowForms;
  const MOVES = "Started,Resumed,Transitioned,AttemptFailed,WaitingForSignal,SignalReceived," +
    "WaitingForPool,Compensating,Completed,Failed,Cancelled,Paused";

  async function runsPage() {
    const mine = flowCommon.page;
    let machines;
    try {
      machines = await api("GET", "/machines");
      if (mine !== flowCommon.page) return;
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
      const mine = flowCommon.page;
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
      if (mine !== flowCommon.page) return;
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

  window.flowRuns = { runsPage };
})();
