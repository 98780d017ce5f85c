// The dashboard: the runs table (runs.js) and a run's page (run.js), over the server's own API,
// with common.js, forms.js and graph.js. No build step and no dependencies; this script keeps
// the token and shows the page the address names.
"use strict";

(function () {
  const { notice, tokenInput, TOKEN } = flowCommon;
  const { runsPage } = flowRuns;
  const { runPage } = flowRun;

  function route() {
    for (const stop of flowCommon.stops) stop();
    flowCommon.stops = [];
    flowCommon.page += 1;
    if (notice.classList.contains("ok")) notice.hidden = true;
    const path = location.hash.replace(/^#/, "") || "/";
    const run = path.match(/^\/runs\/([0-9a-fA-F]{32})$/);
    if (run) runPage(run[1].toLowerCase());
    else runsPage();
  }

  tokenInput.value = flowCommon.token;
  document.getElementById("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    flowCommon.token = tokenInput.value.trim();
    if (flowCommon.token) localStorage.setItem(TOKEN, flowCommon.token);
    else localStorage.removeItem(TOKEN);
    notice.hidden = true;
    route();
  });
  window.addEventListener("hashchange", route);
  route();
})();
