// A task's page refreshes itself while the task has not ended (status,
// progress and log lines change as it runs). Paused while the tab is hidden,
// and stopped once the user leaves the page (a link, a form): a reload would
// cancel that navigation and bring them back here.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  const live = document.querySelector("[data-qtasks-refresh]");
  if (!live) {
    return;
  }
  const seconds = parseFloat(live.dataset.qtasksRefresh) || 2;
  let timer = null;
  function tick() {
    if (document.visibilityState === "visible") {
      window.location.reload();
    } else {
      timer = window.setTimeout(tick, seconds * 1000);
    }
  }
  function stop() {
    window.clearTimeout(timer);
  }
  window.addEventListener("beforeunload", stop);
  document.addEventListener("click", function (event) {
    const link = event.target.closest("a[href]");
    if (link && !link.getAttribute("href").startsWith("#")) {
      stop();
    }
  });
  document.addEventListener("submit", stop);
  timer = window.setTimeout(tick, seconds * 1000);
});
