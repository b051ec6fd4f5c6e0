// A task's page refreshes itself while the task has not ended (status,
// progress and log lines change as it runs). Paused while the tab is hidden.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  const live = document.querySelector("[data-qtasks-refresh]");
  if (!live) {
    return;
  }
  const seconds = parseFloat(live.dataset.qtasksRefresh) || 2;
  function tick() {
    if (document.visibilityState === "visible") {
      window.location.reload();
    } else {
      window.setTimeout(tick, seconds * 1000);
    }
  }
  window.setTimeout(tick, seconds * 1000);
});
